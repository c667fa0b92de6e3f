#!/usr/bin/env bash
# One device call: Nsight Compute on the int8 tensor-core kernel at skinny m (session 11 found its
# blocks progress ~1 weight group a microsecond whatever the grid, lab README "Skinny m"): stall
# reasons, issue use, occupancy, memory throughput, and stall samples per SASS instruction for
# the 40B qkv at m = 64 (the launcher's 64x128 tile, 3 splits), the 40B k projection unsplit on
# the 32x128 tile (8 blocks: one block's latency alone) and the 40B gate/up at m = 64 (2 splits).
set -uo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/w8a16-ncu-prefill}
mkdir -p "$OUT"
export PATH=$PATH:/usr/local/cuda/bin
[ -x build/w8a16 ] && ./build/w8a16 info >/dev/null 2>&1 || ./build.sh > "$OUT/build.log" 2>&1
SECTIONS="--section SpeedOfLight --section Occupancy --section LaunchStats --section SchedulerStats --section WarpStateStats --section MemoryWorkloadAnalysis --section InstructionStats"
# skinny-one: 3 warm-up launches, then the timed ones; the 4th launch is profiled.
run() {  # run NAME N K M TILE SPLIT
  local name=$1; shift
  timeout 150 ncu --clock-control none --kernel-name regex:prefillKernel --launch-skip 3 --launch-count 1 $SECTIONS \
    ./build/w8a16 skinny-one "$@" --reps 10 > "$OUT/ncu-$name.txt" 2>&1
  echo "== $name rc=$?"
  grep -E "Duration|Memory Throughput|DRAM Throughput|Issue Slots Busy|Issued Ipc|No Eligible|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Block Limit|Stall|L2 Hit|Theoretical Occupancy" "$OUT/ncu-$name.txt" | head -30
}
run qkv-m64-t5s3 9216 7168 64 5 3
run k-m64-t4s1 1024 7168 64 4 1
run gateup-m64-t5s2 40960 7168 64 5 2
timeout 150 ncu --clock-control none --kernel-name regex:prefillKernel --launch-skip 3 --launch-count 1 --section SourceCounters \
  --page source --csv --print-source sass ./build/w8a16 skinny-one 9216 7168 64 5 3 --reps 10 > "$OUT/ncu-source-qkv.csv" 2>&1
echo "ncu source rc=$?"
