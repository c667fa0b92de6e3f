#!/usr/bin/env bash
# One command for the serving load test on a GPU machine (issue #8): our server at 8B and 40B
# shapes (dummy weights) under 1/8/32/128 concurrent streaming clients (each request its own
# picture; clients start spread over one request time: steady state, not the opening burst), then the transformers
# baseline's static batches of the same requests in the same session; writes
# bench/results/loadtest-<date>-<gpu>.json (+ the baseline file it pairs with) and the mixed-steps
# A/B bench/results/mixedsteps-loadtest-<date>-<gpu>.json (each model with its default setting
# in the first, off in the second).
#   source .gpu/setup.sh && bench/run_loadtest.sh [ours|baseline|all]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
date=$(date +%Y-%m-%d)
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-' | tr 'A-Z' 'a-z')
tmp=${OUT:-/tmp}
# The static-batching comparison: its own transformers run, or (BASELINE=file) the one
# bench/run_all.sh made in the same session (it measures the same batches).
baseline=${BASELINE:-bench/results/baseline-transformers-${date}-${gpu}-loadtest.json}
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
  ' "$tmp/loadtest-8b.json" "$tmp/loadtest-40b.json" "bench/results/loadtest-${date}-${gpu}.json" \
    "$baseline"
fi
# The mixed-steps A/B (LoadOptions.mixedSteps, on by default on CUDA): the 1- and 32-client
# levels again with them off, in the same session; report.mjs shows it beside the file above
# (MIXED=0 skips it).
if [[ ( $what == ours || $what == all ) && ${MIXED:-1} != 0 ]]; then
  node bench/loadtest.mjs --config bench/configs/InternVL2-8B.json --tokenizer test/fixtures/models/tiny-qwen2 \
    --concurrency 1 32 --requests 4 --ramp-ms auto --no-mixed-steps --out "$tmp/mixed-8b.json"
  node bench/loadtest.mjs --config bench/configs/InternVL2-40B.json --tokenizer test/fixtures/models/tiny-qwen2 \
    --concurrency 1 32 --requests 3 --ramp-ms auto --no-mixed-steps --out "$tmp/mixed-40b.json"
  node -e '
    const fs = require("fs");
    const [a, b, out, against] = process.argv.slice(1);
    const A = JSON.parse(fs.readFileSync(a)), B = JSON.parse(fs.readFileSync(b));
    const doc = { engine: A.engine, what: "loadtest, each model with the mixed-steps setting it does not get by default: off (A/B against the loadtest file of the same date)", gpu: A.gpu,
      date: A.date, against, models: { "InternVL2-8B": A, "InternVL2-40B": B } };
    fs.writeFileSync(out, JSON.stringify(doc, null, 2) + "\n");
  ' "$tmp/mixed-8b.json" "$tmp/mixed-40b.json" "bench/results/mixedsteps-loadtest-${date}-${gpu}.json" \
    "bench/results/loadtest-${date}-${gpu}.json"
fi
if [[ $what == baseline || $what == all ]]; then
  python3 bench/baseline_transformers.py --configs bench/configs/InternVL2-8B.json bench/configs/InternVL2-40B.json \
    --reps 2 --batches 8 32 128 --out "$baseline"
fi
