#!/usr/bin/env bash
# One device call: the decode chain's block timeline (cuda/kernel_trace.h) with the GEMVs' whole
# prologue before their PDL waits and with only 1 or 2 ring units there (W8A16_LAB_PROLOGUE), to
# see whether the next GEMV's prologue loads slow the norms and attention they overlap. Builds
# build/w8a16-trace here if it is not carried. Per-launch / per-block CSVs and the printed
# tables go to $OUT (blocks CSVs gzipped).
set -uo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/w8a16-trace}
mkdir -p "$OUT"
export PATH=$PATH:/usr/local/cuda/bin
[ -x build/w8a16-trace ] && ./build/w8a16-trace info >/dev/null 2>&1 || TRACE=1 ./build.sh > "$OUT/build.log" 2>&1 ||
  { tail -20 "$OUT/build.log"; exit 1; }
for u in 0 1 2 0; do
  W8A16_LAB_PROLOGUE=$u W8A16_LAB_TRACE="$OUT/trace-u$u" timeout 120 ./build/w8a16-trace bench --no-shapes --layers 60 \
    --kv 350 > "$OUT/chain-u$u.txt" 2>&1
  echo "== prologue units $u (0: all), rc=$?"
  grep -E "^trace|^  +[0-9]+ |step\+attn" "$OUT/chain-u$u.txt"
done
gzip -f "$OUT"/trace-*-blocks.csv
python3 trace_tails.py "$OUT/trace-u0-m1-blocks.csv.gz" | tee "$OUT/tails-u0-m1.txt"
