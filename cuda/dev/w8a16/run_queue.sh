#!/usr/bin/env bash
# One device call: the queue form of the single-wave decode GEMVs (W8A16_LAB_QUEUE = chunk units
# [,static chunks a warp]; unset: the plain kernel), validated, then the 40B layer chain
# alternating without and with it. Carry build/ or it is built here. (Session 10 ran the first,
# tile-major form with QUEUE_LIST='off 4 2 8 off 4 4,6'; the chunk-major form after it is unrun.)
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/w8a16-queue}
mkdir -p "$OUT"
export PATH=$PATH:/usr/local/cuda/bin
[ -x build/w8a16 ] && ./build/w8a16 info >/dev/null 2>&1 || ./build.sh > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
W8A16_LAB_QUEUE=4 timeout 120 ./build/w8a16 validate --small > "$OUT/validate-queue.txt" 2>&1
echo "validate rc=$?"; grep -E "FAIL|PASS|threw" "$OUT/validate-queue.txt" | head -20
grep -E "queue" "$OUT/validate-queue.txt" | head -12
i=0
for q in ${QUEUE_LIST:-off 4 8 4,3 2 off 4}; do
  i=$((i + 1))
  f="$OUT/chain-$i-q${q/,/-}.txt"
  if [ "$q" = off ]; then timeout 90 ./build/w8a16 bench --no-shapes --layers 60 --kv 350 > "$f" 2>&1
  else W8A16_LAB_QUEUE=$q timeout 90 ./build/w8a16 bench --no-shapes --layers 60 --kv 350 > "$f" 2>&1; fi
  echo "== queue $q rc=$?"
  grep -E "4 GEMV|step\+attn" "$f" | head -12
done
