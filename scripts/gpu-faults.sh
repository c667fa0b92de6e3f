#!/usr/bin/env bash
# Issue #11's fault tests on the GPU machine: test/gpu/faults.test.ts (load OOM, OOM in a batch,
# a CUDA error confined to its model, device memory after a burst) and test/faults/oom.test.ts
# (the same scheduler paths on the CPU backend). One jest process, one file at a time: the
# load-OOM test claims most of the GPU for a moment and compares the device's free memory,
# which any other process on the GPU would move.
#
# From the unpacked tree on the GPU machine (scripts/gpu-snapshot.sh here first):
#   source .gpu/setup.sh && . scripts/gpu-unpack.sh && scripts/gpu-faults.sh [OUT_DIR]
set -euo pipefail
out=${1:-${OUT:-/tmp/gpu-faults}}
mkdir -p "$out"
npm run build:native >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
node -e "const i = require('./build/Release/internvl.node').info(); console.log(JSON.stringify(i.cuda)); if (!i.backends.includes('cuda')) process.exit(3)"
node --experimental-vm-modules --no-warnings=ExperimentalWarning node_modules/jest/bin/jest.js --runInBand \
  test/gpu/faults.test.ts test/faults/oom.test.ts 2>&1 | tee "$out/faults.txt"
