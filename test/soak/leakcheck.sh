#!/usr/bin/env bash
# Native leak and memory-error check (#11): builds the addon with AddressSanitizer +
# UBSan (CMake option INTERNVL_SANITIZE, CPU backend, debug) into a scratch module root,
# runs test/soak/leakcheck.mjs in node with libasan preloaded and LeakSanitizer on, and
# fails on any leak, ASan error or UBSan runtime error. The normal build/ is not touched.
#
#   test/soak/leakcheck.sh [requests]        (default 200; about a minute plus the build)
#
# LEAKCHECK_DIR keeps the scratch root (default: a fresh temp dir, removed at the end).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
requests=${1:-200}
work=${LEAKCHECK_DIR:-$(mktemp -d /tmp/ivl-leakcheck-XXXXXX)}
cleanup() { [ -z "${LEAKCHECK_DIR:-}" ] && rm -rf "$work"; return 0; }
trap cleanup EXIT

cd "$repo"
[ -f dist/index.js ] || npx tsc -p tsconfig.build.json
node node_modules/cmake-js/bin/cmake-js compile --out "$work/build" --CDINTERNVL_CUDA=OFF --CDINTERNVL_SANITIZE=ON --debug \
  $(command -v ninja >/dev/null && echo --generator Ninja) > "$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
# a module root whose build/ holds the sanitized addon (bindings looks under <root>/build)
mkdir -p "$work/test"
cp -r dist package.json "$work/"
cp -r test/soak test/fixtures "$work/test/"
ln -sfn "$repo/node_modules" "$work/node_modules"

asan=$(gcc -print-file-name=libasan.so)
log=$work/leakcheck.log
set +e
LD_PRELOAD=$asan ASAN_OPTIONS=detect_leaks=1:handle_segv=0:fast_unwind_on_malloc=0 UBSAN_OPTIONS=print_stacktrace=1 \
  node --expose-gc "$work/test/soak/leakcheck.mjs" "$requests" > "$log" 2>&1
rc=$?
set -e
grep -v '^    #' "$log" | tail -5
leaks=$(grep -c 'Direct leak\|Indirect leak' "$log" || true)
asanErrors=$(grep -c 'ERROR: AddressSanitizer' "$log" || true)
ubsan=$(grep -c 'runtime error:' "$log" || true)
echo "leakcheck: exit $rc, LeakSanitizer reports $leaks, AddressSanitizer errors $asanErrors, UBSan runtime errors $ubsan"
if [ "$rc" -ne 0 ] || [ "$leaks" -ne 0 ] || [ "$asanErrors" -ne 0 ] || [ "$ubsan" -ne 0 ]; then
  grep -A 30 'ERROR\|runtime error\|Direct leak\|Indirect leak' "$log" | head -120
  exit 1
fi
