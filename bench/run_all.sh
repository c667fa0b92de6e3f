#!/usr/bin/env bash
# One command for the GPU machine: builds the CUDA addon, runs our engine and the
# transformers baseline on the same GPU in the same session, and regenerates the
# README's performance section from the results.
#   source .gpu/setup.sh && bench/run_all.sh [configs...]     (default: 8B and 40B)
set -euo pipefail
cd "$(dirname "$0")/.."
configs=("${@:-bench/configs/InternVL2-8B.json bench/configs/InternVL2-40B.json}")
read -r -a configs <<< "${configs[*]}"
date=$(date +%Y-%m-%d)
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-' | tr 'A-Z' 'a-z')
INTERNVL_CUDA=ON node scripts/build-native.mjs >/dev/null
npx tsc -p tsconfig.build.json
node bench/run.mjs --configs "${configs[@]}" --backend cuda --out "bench/results/ours-${date}-${gpu}.json"
python3 bench/baseline_transformers.py --configs "${configs[@]}" --out "bench/results/baseline-transformers-${date}-${gpu}.json"
node bench/report.mjs >/dev/null
echo "results: bench/results/*-${date}-${gpu}.json; README.md performance section regenerated"
