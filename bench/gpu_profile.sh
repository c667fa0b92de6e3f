#!/usr/bin/env bash
# Where the time goes, on the GPU machine: builds the CUDA addon, then for each phase of
# bench/profile.mjs (ViT over 13 tiles, decode steps at batch 1 / 128) prints the phase's
# wall-clock figures and, under Nsight Compute, the per-kernel time summary.
#   source .gpu/setup.sh && OUT=dir bench/gpu_profile.sh
# Outputs: $OUT/profile.txt (wall clock, JSON lines), $OUT/ncu.txt (per-kernel summaries).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/profile_out}
mkdir -p "$OUT"
t0=$SECONDS
stamp() { echo "[$((SECONDS - t0))s] $*" | tee -a "$OUT/profile.txt"; }
if [[ ! -f build/Release/internvl.node ]] || [[ ${REBUILD:-0} == 1 ]]; then
  INTERNVL_CUDA=ON node scripts/build-native.mjs >"$OUT/build.txt" 2>&1 || { tail -40 "$OUT/build.txt"; exit 1; }
fi
npx tsc -p tsconfig.build.json >>"$OUT/build.txt" 2>&1 || { tail -20 "$OUT/build.txt"; exit 1; }
stamp "built"
B8=bench/configs/InternVL2-8B.json
B40=bench/configs/InternVL2-40B.json
wall() { timeout 240 node bench/profile.mjs "$@" >>"$OUT/profile.txt" 2>&1; stamp "wall $* rc=$?"; }
prof() {
  echo "=== ncu $*" >>"$OUT/ncu.txt"
  timeout 240 ncu --cache-control none --clock-control none --metrics gpu__time_duration.sum \
    --print-summary per-kernel node bench/profile.mjs "$@" >>"$OUT/ncu.txt" 2>&1
  stamp "ncu $* rc=$?"
}
for phase in ${PHASES:-wall ncu}; do
  if [[ $phase == wall ]]; then
    wall --config $B8 --phase vit --reps 5
    wall --config $B8 --phase decode --batch 1 --steps 32 --reps 2
    wall --config $B8 --phase decode --batch 32 --steps 16 --reps 2
    wall --config $B8 --phase decode --batch 128 --steps 16 --reps 2
    wall --config $B40 --phase vit --reps 3
    wall --config $B40 --phase decode --batch 1 --steps 16 --reps 2 --dtype int8
  else
    prof --config $B8 --phase vit
    prof --config $B8 --phase decode --batch 1 --steps 4
    prof --config $B8 --phase decode --batch 128 --steps 4
    prof --config $B40 --phase decode --batch 1 --steps 4 --dtype int8
  fi
done
python3 bench/ncu_summary.py "$OUT/ncu.txt" 25 > "$OUT/ncu_summary.txt" 2>&1 || true
stamp "done"
