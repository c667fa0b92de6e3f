#!/usr/bin/env bash
# Builds the CPU-vs-CUDA backend parity harness (cuda/dev/backend_parity.cu) with the
# backend's own sources and the CPU reference backend, then runs it with the given
# arguments. For the GPU machine (needs nvcc + cuBLAS):
#   cuda/dev/backend_parity.sh [--small] [--poison] [--json FILE]
#   BUILD_ONLY=1 cuda/dev/backend_parity.sh          # just build build/parity/backend_parity
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${PARITY_BUILD_DIR:-build/parity}
mkdir -p "$out"
arch=${PARITY_ARCH:--gencode=arch=compute_90a,code=sm_90a}
nvflags=(-std=c++17 -O2 --expt-relaxed-constexpr -lineinfo "$arch" -I native -I cuda -I .)
# Every CUDA source of the addon (CMakeLists.txt globs cuda/*.cu the same way): a hand-kept
# list fell behind when qkv_rope_append.cu and the int8 files were added and no longer linked.
cu=(cuda/dev/backend_parity.cu cuda/*.cu)
cpp=(native/cpu/*.cpp)
# The runtime sources the backends lean on (fault injection, ...) go into an archive, so the
# link takes only the objects something references (engine, checkpoint, ... stay out).
rt=(native/runtime/*.cpp)
mkdir -p "$out/runtime"
pids=()
objs=()
rtobjs=()
cxx=(g++ -std=c++17 -O3 -march=x86-64-v2 -I native -I .)
for f in "${cu[@]}"; do
  o="$out/$(basename "${f%.*}").o"
  objs+=("$o")
  nvcc "${nvflags[@]}" -c "$f" -o "$o" & pids+=($!)
done
for f in "${cpp[@]}"; do
  o="$out/$(basename "${f%.*}").o"
  objs+=("$o")
  "${cxx[@]}" -c "$f" -o "$o" & pids+=($!)
done
for f in "${rt[@]}"; do
  o="$out/runtime/$(basename "${f%.*}").o"
  rtobjs+=("$o")
  "${cxx[@]}" -O1 -c "$f" -o "$o" & pids+=($!)  # linked for a few helpers: not worth -O3's time
done
for p in "${pids[@]}"; do wait "$p"; done
rm -f "$out/libivlruntime.a"
ar rcs "$out/libivlruntime.a" "${rtobjs[@]}"
nvcc "$arch" -o "$out/backend_parity" "${objs[@]}" "$out/libivlruntime.a" -lcublasLt -lcublas -lpthread
if [[ "${BUILD_ONLY:-0}" == 1 ]]; then exit 0; fi
exec "$out/backend_parity" "$@"
