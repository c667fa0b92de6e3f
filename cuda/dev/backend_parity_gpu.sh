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
#   PARITY_FULL=0          skip step 1 (the full shapes)
#   PARITY_REUSE=1         run the harness already built in $PARITY_BUILD_DIR (default
#                          build/parity) instead of building it again
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
bin=${PARITY_BUILD_DIR:-build/parity}/backend_parity
if [[ "${PARITY_REUSE:-0}" == 1 && -x $bin ]]; then
  built=0
  stamp "harness reused: $bin"
else
  BUILD_ONLY=1 cuda/dev/backend_parity.sh >>"$OUT/build_parity.txt" 2>&1
  built=$?
  echo "rc=$built" >>"$OUT/build_parity.txt"
  stamp "harness built (rc=$built)"
fi
if [[ $built == 0 ]]; then
  if [[ "${PARITY_FULL:-1}" != 0 ]]; then
    timeout 300 "$bin" --json "$OUT/parity.jsonl" >"$OUT/parity.txt" 2>&1
    stamp "parity rc=$?"
  fi
  if [[ $sanitizers == *" memcheck "* ]]; then
    # API errors not reported: the harness asks for 128 TiB on purpose (ERR_OOM), and every CUDA
    # call's status is checked by the backend itself.
    timeout 200 compute-sanitizer --tool memcheck --report-api-errors no --leak-check full --error-exitcode 9 \
      "$bin" --small >"$OUT/memcheck.txt" 2>&1
    stamp "memcheck rc=$?"
  fi
  if [[ $sanitizers == *" racecheck "* ]]; then
    timeout 300 compute-sanitizer --tool racecheck --error-exitcode 9 \
      "$bin" --small >"$OUT/racecheck.txt" 2>&1
    stamp "racecheck rc=$?"
  fi
  if [[ $sanitizers == *" initcheck "* ]]; then
    timeout 200 compute-sanitizer --tool initcheck --error-exitcode 9 \
      "$bin" --small >"$OUT/initcheck.txt" 2>&1
    stamp "initcheck rc=$?"
  fi
  timeout 60 "$bin" --poison >"$OUT/poison.txt" 2>&1
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
for f in memcheck racecheck initcheck; do  # the --small cases' own verdict under each tool
  [[ -f "$OUT/$f.txt" ]] && echo "$f: $(grep -hE "cases, [0-9]+ failures|^FATAL" "$OUT/$f.txt" | tail -1)"
done
tail -2 "$OUT/poison.txt" 2>/dev/null
grep -E "^Tests:|^Test Suites:" "$OUT/jest.txt" 2>/dev/null
