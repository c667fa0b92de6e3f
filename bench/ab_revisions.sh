#!/usr/bin/env bash
# Same-call A/B of two revisions on the GPU machine: the working tree against an older commit,
# each built here, bench/profile.mjs alternating between them (device time is scarce, and only
# runs of one call compare). Here, first:   git archive REV -- . ':(exclude)test/fixtures' > .gpu/rev.tar
# There (repository root):   source .gpu/setup.sh && OUT=dir bench/ab_revisions.sh [profile.mjs args]
# e.g. bench/ab_revisions.sh --config bench/configs/InternVL2-40B.json --phase decode --batch 32 \
#        --steps 16 --reps 2 --dtype int8        (PASSES=2 by default; summary in $OUT/summary.txt)
set -uo pipefail
OUT=${OUT:-/tmp/ab-revisions}
mkdir -p "$OUT"
t0=$SECONDS
say() { echo "[$((SECONDS - t0))s] $*" | tee -a "$OUT/summary.txt"; }
root=$PWD
rm -rf /tmp/rev && mkdir -p /tmp/rev && tar -xf .gpu/rev.tar -C /tmp/rev && ln -s "$root/node_modules" /tmp/rev/node_modules
build() { (cd "$1" && INTERNVL_CUDA=ON timeout 240 node scripts/build-native.mjs && npx tsc -p tsconfig.build.json) > "$OUT/build-$2.txt" 2>&1; }
build /tmp/rev rev & b=$!
build "$root" tree; say "working tree build rc=$?"
wait $b; say "revision build rc=$?"
run() {  # run LABEL DIR
  (cd "$2" && timeout "${RUN_S:-90}" node bench/profile.mjs "${args[@]}") >> "$OUT/runs.jsonl" 2>&1
  local rc=$?
  say "$1: rc=$rc $(tail -1 "$OUT/runs.jsonl" | python3 -c 'import json, sys; d = json.loads(sys.stdin.read()); print({k: d.get(k) for k in ("step_ms", "prefill_ms", "encode_s")})' 2>/dev/null)"
}
args=("$@")
for ((pass = 1; pass <= ${PASSES:-2}; pass++)); do
  run revision /tmp/rev
  run "working tree" "$root"
done
say done
