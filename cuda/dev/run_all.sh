#!/usr/bin/env bash
# One command for the attention kernel lab: build (unless working binaries are already there),
# validate at awkward shapes, compute-sanitizer memcheck + racecheck on --small shapes, then
# benchmark realistic shapes. Prints a summary last; full logs + JSON lines go to OUTDIR.
#   cuda/dev/run_all.sh [OUTDIR]        (default: $OUT if set, else cuda/dev/results/latest)
#   STEPS="validate bench sanitize" cuda/dev/run_all.sh   (order as listed; any subset)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-${OUT:-$here/results/latest}}
steps=${STEPS:-"validate bench sanitize"}
mkdir -p "$out"
cd "$here"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
export LD_LIBRARY_PATH=$here/build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
bins="rope_append paged_decode paged_prefill"
json=$out/attention.jsonl
summary=$out/summary.txt
: >"$summary"; : >"$out/validate.log"; : >"$out/bench.log"
say() { echo "$*" | tee -a "$summary"; }

# A binary that loads answers a bad argument with exit code 2.
runs() { [ -x "build/$1" ] && { "build/$1" --probe >/dev/null 2>&1; [ $? -eq 2 ]; }; }
need_build=0
for b in $bins; do runs "$b" || need_build=1; done
if [ $need_build = 1 ]; then
  say "building lab binaries here ($(nvcc --version | tail -1))"
  t0=$(date +%s)
  make -j3 HOSTARCH=-march=native >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
  say "build: $(( $(date +%s) - t0 )) s"
else
  say "using prebuilt lab binaries"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /' | tee -a "$summary"

status=0
step_validate() {
  for b in $bins; do
    t0=$(date +%s)
    "build/$b" validate --json "$json" >"$out/tmp.log" 2>&1
    rc=$?
    cat "$out/tmp.log" >>"$out/validate.log"
    [ $rc -ne 0 ] && status=1
    say "== validate $b: rc=$rc ($(( $(date +%s) - t0 )) s)"
    grep -m 12 -E "FAIL|error" "$out/tmp.log" | tee -a "$summary"
    sed -n '/validate (tolerance/,$p' "$out/tmp.log" | tee -a "$summary"
  done
}
step_sanitize() {
  san=$out/sanitize.log
  : >"$san"
  for tool in memcheck racecheck; do
    for b in $bins; do
      t0=$(date +%s)
      timeout ${SAN_TIMEOUT:-120} compute-sanitizer --tool $tool --error-exitcode 3 "build/$b" validate --small >"$out/tmp.log" 2>&1
      rc=$?
      { echo "#### $tool $b --small rc=$rc"; cat "$out/tmp.log"; } >>"$san"
      [ $rc -ne 0 ] && status=1
      say "== $tool $b --small: rc=$rc ($(( $(date +%s) - t0 )) s) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/tmp.log" | tail -1)"
      grep -m 6 -E "^=========  *(Invalid|Race|Error|Warning)|hazard" "$out/tmp.log" | tee -a "$summary"
    done
  done
}
step_bench() {
  for b in $bins; do
    t0=$(date +%s)
    "build/$b" bench --json "$json" >"$out/tmp.log" 2>&1
    rc=$?
    cat "$out/tmp.log" >>"$out/bench.log"
    [ $rc -ne 0 ] && status=1
    say "== bench $b: rc=$rc ($(( $(date +%s) - t0 )) s)"
    sed -n '/benchmark (/,$p' "$out/tmp.log" | tee -a "$summary"
    grep -m 5 -E "error" "$out/tmp.log" | tee -a "$summary"
  done
}
for step in $steps; do
  case $step in
    validate|sanitize|bench) "step_$step" ;;
    *) say "unknown step $step" ; status=1 ;;
  esac
done
rm -f "$out/tmp.log"
say "run_all: $([ $status = 0 ] && echo OK || echo 'FAILURES (see logs)')"
exit $status
