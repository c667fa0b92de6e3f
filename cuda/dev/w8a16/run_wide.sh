#!/usr/bin/env bash
# One device call: 16-warp decode blocks (W8A16_LAB_WIDE = barrier rounds; unset: 8-warp blocks)
# validated, then the 40B layer chain alternating without and with them. Carry build/ or build here.
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/w8a16-wide}
mkdir -p "$OUT"
export PATH=$PATH:/usr/local/cuda/bin
[ -x build/w8a16 ] && ./build/w8a16 info >/dev/null 2>&1 || ./build.sh > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
W8A16_LAB_WIDE=1 timeout 200 ./build/w8a16 validate --small > "$OUT/validate-wide.txt" 2>&1
echo "validate rc=$?"; grep -E "FAIL|PASS|w16" "$OUT/validate-wide.txt" | head -20
i=0
for w in ${WIDE_LIST:-off 0 1 2 off 1}; do
  i=$((i + 1))
  f="$OUT/chain-$i-$w.txt"
  if [ "$w" = off ]; then timeout 100 ./build/w8a16 bench --no-shapes --layers 60 --kv 350 > "$f" 2>&1
  else W8A16_LAB_WIDE=$w timeout 100 ./build/w8a16 bench --no-shapes --layers 60 --kv 350 > "$f" 2>&1; fi
  echo "== wide $w rc=$?"
  grep -E "4 GEMV|step\+attn" "$f" | head -12
done
