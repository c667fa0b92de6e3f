#!/usr/bin/env bash
# Puts the committed tree (HEAD, or the revision given) into .gpu/src.tar, so a GPU run works
# on a known commit while the working tree is being edited. On the GPU machine:
#   source .gpu/setup.sh && . scripts/gpu-unpack.sh && <command>     (cwd: the unpacked tree)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
rev=${1:-HEAD}
mkdir -p .gpu
# test/fixtures (9 MB) is left out: the run's working-tree copy has it (what travels is capped).
git archive --format=tar "$rev" -- . ':(exclude)test/fixtures' > .gpu/src.tar
echo "snapshot: $(git rev-parse --short "$rev") -> .gpu/src.tar ($(du -h .gpu/src.tar | cut -f1))"
