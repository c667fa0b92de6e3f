#!/usr/bin/env bash
# The whole GPU check in one short call (device time is scarce): builds the CUDA addon and the
# parity harness side by side, then in order of importance
#   1. jest test/gpu (goldens on CUDA, int8, device map on virtual devices, API) except faults
#   2. jest test/gpu/faults.test.ts alone (it claims most of the GPU for a moment)
#   3. compute-sanitizer memcheck over the parity harness's --small cases (every backend op)
#   4. 40B decode batch 1: bf16 and int8, wall clock per step (bench/profile.mjs)
# Each step has its own time limit; logs go to $OUT (summary.txt first).
#   source .gpu/setup.sh && . scripts/gpu-unpack.sh && OUT=dir scripts/gpu-final.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu-final}
mkdir -p "$OUT"
t0=$SECONDS
say() { echo "[$((SECONDS - t0))s] $*" | tee -a "$OUT/summary.txt"; }
J=(node --experimental-vm-modules --no-warnings=ExperimentalWarning node_modules/jest/bin/jest.js)

(BUILD_ONLY=1 timeout 240 cuda/dev/backend_parity.sh >"$OUT/build_parity.txt" 2>&1; echo "rc=$?" >>"$OUT/build_parity.txt") &
parity=$!
INTERNVL_CUDA=ON timeout 240 node scripts/build-native.mjs >"$OUT/build.txt" 2>&1
say "addon build rc=$?"
npx tsc -p tsconfig.build.json >>"$OUT/build.txt" 2>&1

timeout ${JEST_S:-150} "${J[@]}" --testPathIgnorePatterns=faults.test -- test/gpu >"$OUT/jest.txt" 2>&1
say "jest test/gpu rc=$? $(grep -E '^Tests:' "$OUT/jest.txt")"
timeout ${FAULTS_S:-90} "${J[@]}" --runInBand test/gpu/faults.test.ts >"$OUT/faults.txt" 2>&1
say "jest faults rc=$? $(grep -E '^Tests:' "$OUT/faults.txt")"

wait $parity
say "parity build $(tail -1 "$OUT/build_parity.txt")"
if grep -q '^rc=0$' "$OUT/build_parity.txt"; then
  timeout ${MEMCHECK_S:-90} compute-sanitizer --tool memcheck --error-exitcode 9 build/parity/backend_parity --small \
    >"$OUT/memcheck.txt" 2>&1
  say "memcheck rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.txt" | tail -1) $(grep -cE 'FAIL' "$OUT/memcheck.txt") FAIL lines"
fi
for dt in int8 bf16; do
  timeout 60 node bench/profile.mjs --config bench/configs/InternVL2-40B.json --phase decode --batch 1 --steps 32 --reps 2 \
    --dtype $dt >>"$OUT/decode.txt" 2>&1
  say "40B decode $dt rc=$? $(tail -1 "$OUT/decode.txt" | grep -oE '"step_ms":[0-9.]+')"
done
say "done"
