#!/usr/bin/env bash
# Everything one device call does, in order: check the carried binary runs (else build it there),
# validate, compute-sanitizer (memcheck on --small, racecheck on --race), benchmark. Logs go to
# $OUT; a short summary goes to stdout. BENCH_ARGS (default --sweep), SANITIZE=0 and CEILING=0 adjust it.
set -uo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/w8a16-out}
mkdir -p "$OUT"
export PATH=$PATH:/usr/local/cuda/bin
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
T0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv > "$OUT/env.txt" 2>&1
if ! ./build/w8a16 info >> "$OUT/env.txt" 2>&1; then
  echo "carried binary does not run here: building"
  ./build.sh > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
fi
cuobjdump --dump-sass build/w8a16 2>/dev/null | awk '/Function :/{f=$3} {print f" "$0}' |
  grep -oE "^[^ ]+ +/\*[0-9a-f]+\*/ +[A-Z0-9.]+" | awk '{print $1, $3}' | sort | uniq -c |
  grep -E "decodeKernelILi1ELb0ELi4|prefillKernelILi128ELi128ELi2ELi4ELi3ELi1ELb0" |
  grep -E " (LDG|HMMA|LDS|PRMT|FADD|LDL|STL|BAR|STS|LDGSTS)" > "$OUT/sass.txt" 2>&1
echo "== validate"
./build/w8a16 validate > "$OUT/validate.log" 2>&1; echo "validate rc=$? ($(( $(date +%s) - T0 )) s)"
grep -E "FAIL|threw" "$OUT/validate.log" | head -20
sed -n '/^class/,$p' "$OUT/validate.log"
if [ "${SANITIZE:-1}" = 1 ]; then
  echo "== compute-sanitizer"
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 ./build/w8a16 validate --small > "$OUT/sanitizer.log" 2>&1
  echo "memcheck rc=$? ($(( $(date +%s) - T0 )) s)"
  timeout 120 compute-sanitizer --tool racecheck --error-exitcode 9 ./build/w8a16 validate --race >> "$OUT/sanitizer.log" 2>&1
  echo "racecheck rc=$? ($(( $(date +%s) - T0 )) s)"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|VALIDATE" "$OUT/sanitizer.log"
fi
if [ "${CEILING:-1}" = 1 ]; then
  echo "== read ceiling"
  ./build/w8a16 ceiling > "$OUT/ceiling.log" 2>&1; echo "ceiling rc=$? ($(( $(date +%s) - T0 )) s)"
  cat "$OUT/ceiling.log"
fi
echo "== bench"
./build/w8a16 bench ${BENCH_ARGS:---sweep} --json "$OUT/bench.json" > "$OUT/bench.log" 2>&1
echo "bench rc=$? ($(( $(date +%s) - T0 )) s)"
grep -vE "^ +sweep best" "$OUT/bench.log" | cut -c1-150
