#!/usr/bin/env bash
# Builds cuda/dev/greedy_tokens.cu with the CUDA backend's sources (as backend_parity.sh does)
# and runs it: CudaBackend::greedyTokens vs the host sampler's greedy choice, then timings.
# For the GPU machine (needs nvcc + cuBLAS):
#   cuda/dev/greedy_tokens.sh [--json FILE]
#   BUILD_ONLY=1 cuda/dev/greedy_tokens.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${GREEDY_BUILD_DIR:-build/greedy}
mkdir -p "$out/runtime"
arch=${GREEDY_ARCH:--gencode=arch=compute_90a,code=sm_90a}
nvflags=(-std=c++17 -O2 --expt-relaxed-constexpr -lineinfo "$arch" -I native -I cuda -I .)
cxx=(g++ -std=c++17 -O2 -march=x86-64-v2 -I native -I .)
cu=(cuda/dev/greedy_tokens.cu cuda/*.cu)
pids=()
objs=()
rtobjs=()
for f in "${cu[@]}"; do
  o="$out/$(basename "${f%.*}").o"
  objs+=("$o")
  nvcc "${nvflags[@]}" -c "$f" -o "$o" & pids+=($!)
done
# runtime helpers the backend calls (fault injection, ...), through an archive: only what is referenced
for f in native/runtime/*.cpp; do
  o="$out/runtime/$(basename "${f%.*}").o"
  rtobjs+=("$o")
  "${cxx[@]}" -O1 -c "$f" -o "$o" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
rm -f "$out/libivlruntime.a"
ar rcs "$out/libivlruntime.a" "${rtobjs[@]}"
nvcc "$arch" -o "$out/greedy_tokens" "${objs[@]}" "$out/libivlruntime.a" -lcublasLt -lcublas -lpthread
if [[ "${BUILD_ONLY:-0}" == 1 ]]; then exit 0; fi
exec "$out/greedy_tokens" "$@"
