#!/usr/bin/env bash
# One device call: Nsight Compute on the decode GEMV at batch 1 (the 40B gate/up and down shapes
# from `./w8a16 ceiling`), to see where it loses against the read ceiling: warp stall reasons,
# issue utilization, occupancy, memory throughput, and stall samples per SASS instruction.
set -uo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/w8a16-ncu}
mkdir -p "$OUT"
export PATH=$PATH:/usr/local/cuda/bin
[ -x build/w8a16 ] && ./build/w8a16 info >/dev/null 2>&1 || ./build.sh > "$OUT/build.log" 2>&1
# ceiling runs per shape: 3 plain-read unrolls x 3 occupancies, 2 pattern kernels, then gemmW8A16:
# decodeKernel launches 0-12 are gate/up's (3 warm-ups + 10 reps), 13-25 down's.
SECTIONS="--section SpeedOfLight --section Occupancy --section LaunchStats --section SchedulerStats --section WarpStateStats --section MemoryWorkloadAnalysis --section InstructionStats"
for skip in 3 16; do
  timeout 200 ncu --clock-control none --kernel-name regex:decodeKernel --launch-skip $skip --launch-count 1 $SECTIONS \
    ./build/w8a16 ceiling --reps 10 > "$OUT/ncu-skip$skip.txt" 2>&1
  echo "ncu skip $skip rc=$?"
  grep -E "decodeKernel|Duration|Memory Throughput|DRAM Throughput|Issue Slots Busy|Issued Ipc|No Eligible|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Block Limit|Stall|L2 Hit" "$OUT/ncu-skip$skip.txt" | head -40
done
# Stall samples per SASS instruction (gate/up), the top lines
timeout 200 ncu --clock-control none --kernel-name regex:decodeKernel --launch-skip 3 --launch-count 1 --section SourceCounters \
  --page source --csv --print-source sass ./build/w8a16 ceiling --reps 10 > "$OUT/ncu-source.csv" 2>&1
echo "ncu source rc=$?"
