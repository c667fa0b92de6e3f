#!/usr/bin/env bash
# One command for the serving load test on a GPU machine (issue #8): our server at 8B and 40B
# shapes (dummy weights) under 1/8/32/128 concurrent streaming clients (each request its own
# picture; clients start spread over one request time: steady state, not the opening burst), then the transformers
# baseline's static batches of the same requests in the same session; writes
# bench/results/loadtest-<date>[b, c, ..]-<gpu>.json (+ the baseline file it pairs with); with MIXED=1 the
# mixed-steps A/B bench/results/mixedsteps-loadtest-<date>-<gpu>.json (each model with its default
# setting in the first, off in the second), with VISION_AB=1 the vision-ahead A/B
# bench/results/visionahead-loadtest-<date>-<gpu>.json (on; off in the first). `vision` runs only
# that A/B, its plain side at 1 and 32 clients written to visionahead-off-loadtest-<date>-<gpu>.json.
# `threadpool` runs only the libuv threadpool A/B (Node's 4 threads vs what `internvl serve`
# sets), both sides in bench/results/threadpool-loadtest-<date>-<gpu>.json.
#   source .gpu/setup.sh && bench/run_loadtest.sh [ours|baseline|all|vision|threadpool]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
date=$(date +%Y-%m-%d)
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-' | tr 'A-Z' 'a-z')
tmp=${OUT:-/tmp}
# The static-batching comparison: its own transformers run, or (BASELINE=file) the one
# bench/run_all.sh made in the same session (it measures the same batches).
baseline=${BASELINE:-bench/results/baseline-transformers-${date}-${gpu}-loadtest.json}
# The day's load-test file. A new run never overwrites an earlier one (the A/B files name it as
# their pair): the day's second run writes loadtest-<date>b-<gpu>.json, and so on; the modes
# that only pair with it take the day's last one.
main=bench/results/loadtest-${date}-${gpu}.json
for s in b c d e f g h i j; do
  next=bench/results/loadtest-${date}${s}-${gpu}.json
  if [[ $what == ours || $what == all ]]; then [[ -e $main ]] || break; main=$next
  else [[ -e $next ]] || break; main=$next; fi
done
# An A/B file: the 8B and 40B runs as its models, `against` naming the file with the other side.
merge_ab() {
  node -e '
    const fs = require("fs");
    const [a, b, out, what, against] = process.argv.slice(1);
    const A = JSON.parse(fs.readFileSync(a)), B = JSON.parse(fs.readFileSync(b));
    const doc = { engine: A.engine, what, gpu: A.gpu, date: A.date, against, models: { "InternVL2-8B": A, "InternVL2-40B": B } };
    fs.writeFileSync(out, JSON.stringify(doc, null, 2) + "\n");
  ' "$@"
}
if [[ $what == ours || $what == all ]]; then
  node bench/loadtest.mjs --config bench/configs/InternVL2-8B.json --tokenizer test/fixtures/models/tiny-qwen2 \
    --concurrency 1 8 32 128 --requests 4 --ramp-ms auto --burst-levels 32 --out "$tmp/loadtest-8b.json"
  node bench/loadtest.mjs --config bench/configs/InternVL2-40B.json --tokenizer test/fixtures/models/tiny-qwen2 \
    --concurrency 1 8 32 128 --requests 3 --ramp-ms auto --burst-levels 32 --out "$tmp/loadtest-40b.json"
  node -e '
    const fs = require("fs");
    const [a, b, out, base] = process.argv.slice(1);
    const A = JSON.parse(fs.readFileSync(a)), B = JSON.parse(fs.readFileSync(b));
    const doc = { engine: A.engine, what: "loadtest", gpu: A.gpu, date: A.date, baseline: base, max_tokens: A.max_tokens,
      models: { "InternVL2-8B": A, "InternVL2-40B": B } };
    fs.writeFileSync(out, JSON.stringify(doc, null, 2) + "\n");
  ' "$tmp/loadtest-8b.json" "$tmp/loadtest-40b.json" "$main" \
    "$baseline"
fi
# The mixed-steps A/B (LoadOptions.mixedSteps, on by default on CUDA): the 1- and 32-client
# levels again with them off, in the same session; report.mjs shows it beside the file above
# (MIXED=1 runs it: settled on 2026-11-29, four A/Bs, ENGINE.md; off by default, since device
# time is scarce).
if [[ ( $what == ours || $what == all ) && ${MIXED:-0} != 0 ]]; then
  node bench/loadtest.mjs --config bench/configs/InternVL2-8B.json --tokenizer test/fixtures/models/tiny-qwen2 \
    --concurrency 1 32 --requests 4 --ramp-ms auto --no-mixed-steps --out "$tmp/mixed-8b.json"
  node bench/loadtest.mjs --config bench/configs/InternVL2-40B.json --tokenizer test/fixtures/models/tiny-qwen2 \
    --concurrency 1 32 --requests 3 --ramp-ms auto --no-mixed-steps --out "$tmp/mixed-40b.json"
  merge_ab "$tmp/mixed-8b.json" "$tmp/mixed-40b.json" "bench/results/mixedsteps-loadtest-${date}-${gpu}.json" \
    "loadtest, each model with the mixed-steps setting it does not get by default: off (A/B against the loadtest file of the same date)" \
    "$main"
fi
# The vision-ahead A/B (LoadOptions.visionAhead, off by default): the 1- and 32-client levels
# again with it on, in the same session (VISION_AB=1 runs it with ours/all: settled on
# 2026-11-29, seven pairs, not a gain; off by default). Its off side is the loadtest
# file of the same date, or with `vision` (a short device run: only this A/B) the same two
# levels run here without the flag.
against=$main
if [[ $what == vision ]]; then
  node bench/loadtest.mjs --config bench/configs/InternVL2-8B.json --tokenizer test/fixtures/models/tiny-qwen2 \
    --concurrency 1 32 --requests 4 --ramp-ms auto --out "$tmp/visionoff-8b.json"
  node bench/loadtest.mjs --config bench/configs/InternVL2-40B.json --tokenizer test/fixtures/models/tiny-qwen2 \
    --concurrency 1 32 --requests 3 --ramp-ms auto --out "$tmp/visionoff-40b.json"
  against=bench/results/visionahead-off-loadtest-${date}-${gpu}.json
  merge_ab "$tmp/visionoff-8b.json" "$tmp/visionoff-40b.json" "$against" \
    "loadtest at 1 and 32 clients, each model with its default settings (vision ahead off): the off side of the vision-ahead A/B of the same date" \
    "bench/results/visionahead-loadtest-${date}-${gpu}.json"
fi
if [[ $what == vision || ( ( $what == ours || $what == all ) && ${VISION_AB:-0} != 0 ) ]]; then
  node bench/loadtest.mjs --config bench/configs/InternVL2-8B.json --tokenizer test/fixtures/models/tiny-qwen2 \
    --concurrency 1 32 --requests 4 --ramp-ms auto --vision-ahead --out "$tmp/vision-8b.json"
  node bench/loadtest.mjs --config bench/configs/InternVL2-40B.json --tokenizer test/fixtures/models/tiny-qwen2 \
    --concurrency 1 32 --requests 3 --ramp-ms auto --vision-ahead --out "$tmp/vision-40b.json"
  merge_ab "$tmp/vision-8b.json" "$tmp/vision-40b.json" "bench/results/visionahead-loadtest-${date}-${gpu}.json" \
    "loadtest, each model with vision ahead on (A/B against the file named in against, same session)" "$against"
fi
# The threadpool A/B: the 1- and 32-client levels with libuv's pool at Node's default (4) and at
# the size `internvl serve` gives it (the load test's default), each model's two runs back to
# back; the file holds both sides (models as in merge_ab's files).
if [[ $what == threadpool ]]; then
  for side in node-default serve; do
    flag=(); [[ $side == node-default ]] && flag=(--uv-threadpool 0)
    node bench/loadtest.mjs --config bench/configs/InternVL2-8B.json --tokenizer test/fixtures/models/tiny-qwen2 \
      --concurrency 1 32 --requests 4 --ramp-ms auto "${flag[@]}" --out "$tmp/threadpool-$side-8b.json"
  done
  for side in node-default serve; do
    flag=(); [[ $side == node-default ]] && flag=(--uv-threadpool 0)
    node bench/loadtest.mjs --config bench/configs/InternVL2-40B.json --tokenizer test/fixtures/models/tiny-qwen2 \
      --concurrency 1 32 --requests 3 --ramp-ms auto "${flag[@]}" --out "$tmp/threadpool-$side-40b.json"
  done
  node --input-type=module -e '
    import { readFileSync, writeFileSync } from "node:fs";
    import { loadtestJson } from "./bench/loadtest_json.mjs";
    const [out, ...runs] = process.argv.slice(1);
    const [off8, off40, on8, on40] = runs.map((f) => JSON.parse(readFileSync(f)));
    const models = (a, b) => ({ "InternVL2-8B": a, "InternVL2-40B": b });
    writeFileSync(out, loadtestJson({ engine: off8.engine,
      what: "loadtest at 1 and 32 clients, libuv threadpool A/B: Node default (4 threads) vs the size internvl serve sets (uv_threadpool_size in each run)",
      gpu: off8.gpu, date: off8.date, sides: { "node-default": { models: models(off8, off40) }, serve: { models: models(on8, on40) } } }));
  ' "bench/results/threadpool-loadtest-${date}-${gpu}.json" \
    "$tmp"/threadpool-{node-default,serve}-{8b,40b}.json
fi
if [[ $what == baseline || $what == all ]]; then
  python3 bench/baseline_transformers.py --configs bench/configs/InternVL2-8B.json bench/configs/InternVL2-40B.json \
    --reps 2 --batches 8 32 128 --out "$baseline"
fi
