#!/usr/bin/env bash
# The CUDA backend's whole check on the GPU machine, in one session (device time is
# scarce): builds the parity harness and the CUDA addon side by side, then runs
#   1. the op-by-op parity harness (full shapes)           -> $OUT/parity.txt, parity.jsonl
#   2. compute-sanitizer memcheck on its small mode        -> $OUT/memcheck.txt
#   3. racecheck (shared-memory hazards) on the small mode -> $OUT/racecheck.txt
#   4. initcheck (reads of unwritten device memory), small -> $OUT/initcheck.txt
#   5. the sticky-error (poison) test, its own process     -> $OUT/poison.txt
#   6. jest test/gpu (end to end vs the PyTorch goldens)   -> $OUT/jest.txt, e2e.json
# Build logs: $OUT/build_parity.txt, $OUT/build_addon.txt. Usage, from the project root:
#   source .gpu/setup.sh && cuda/dev/backend_parity_gpu.sh
# The whole run can pass 10 minutes; to split it into shorter commands:
#   PARITY_ONLY=1          steps 1-5 only (no addon build, no jest)
#   SANITIZERS="memcheck"  which of memcheck / racecheck / initcheck run (default: all three)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/backend_parity_out}
mkdir -p "$OUT"
t0=$SECONDS
stamp() { echo "[$((SECONDS - t0))s] $*"; }

addon=
if [[ "${PARITY_ONLY:-0}" != 1 ]]; then
  (INTERNVL_CUDA=ON node scripts/build-native.mjs >"$OUT/build_addon.txt" 2>&1; echo "rc=$?" >>"$OUT/build_addon.txt") &
  addon=$!
fi
sanitizers=" ${SANITIZERS:-memcheck racecheck initcheck} "
{ nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv; nvcc --version | tail -2; } \
  >"$OUT/build_parity.txt" 2>&1
BUILD_ONLY=1 cuda/dev/backend_parity.sh >>"$OUT/build_parity.txt" 2>&1
built=$?
echo "rc=$built" >>"$OUT/build_parity.txt"
stamp "harness built (rc=$built)"
if [[ $built == 0 ]]; then
  timeout 300 build/parity/backend_parity --json "$OUT/parity.jsonl" >"$OUT/parity.txt" 2>&1
  stamp "parity rc=$?"
  if [[ $sanitizers == *" memcheck "* ]]; then
    timeout 200 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 9 \
      build/parity/backend_parity --small >"$OUT/memcheck.txt" 2>&1
    stamp "memcheck rc=$?"
  fi
  if [[ $sanitizers == *" racecheck "* ]]; then
    timeout 300 compute-sanitizer --tool racecheck --error-exitcode 9 \
      build/parity/backend_parity --small >"$OUT/racecheck.txt" 2>&1
    stamp "racecheck rc=$?"
  fi
  if [[ $sanitizers == *" initcheck "* ]]; then
    timeout 200 compute-sanitizer --tool initcheck --error-exitcode 9 \
      build/parity/backend_parity --small >"$OUT/initcheck.txt" 2>&1
    stamp "initcheck rc=$?"
  fi
  timeout 60 build/parity/backend_parity --poison >"$OUT/poison.txt" 2>&1
  stamp "poison rc=$?"
fi
if [[ -n $addon ]]; then
  wait $addon
  stamp "addon build: $(tail -1 "$OUT/build_addon.txt")"
  if grep -q '^rc=0$' "$OUT/build_addon.txt"; then
    BACKEND_PARITY_OUT="$OUT/e2e.json" timeout 300 npm test -- test/gpu >"$OUT/jest.txt" 2>&1
    stamp "jest rc=$?"
  fi
fi
tail -3 "$OUT/parity.txt" 2>/dev/null
grep -E "ERROR SUMMARY|LEAK SUMMARY" "$OUT/memcheck.txt" 2>/dev/null
grep -E "RACECHECK SUMMARY|ERROR SUMMARY" "$OUT/racecheck.txt" 2>/dev/null
grep -E "ERROR SUMMARY" "$OUT/initcheck.txt" 2>/dev/null
tail -2 "$OUT/poison.txt" 2>/dev/null
grep -E "^Tests:|^Test Suites:" "$OUT/jest.txt" 2>/dev/null
