#!/usr/bin/env bash
# Builds the native fuzz targets with AddressSanitizer + UBSan and runs each for a
# bounded time over its committed corpus (fuzz/corpus/<target>/). Fails on any crash,
# sanitizer report, leak or hang (an input slower than FUZZ_TIMEOUT seconds).
#
#   fuzz/run.sh [target...]          targets: json safetensors_header checkpoint_index (default: all)
#
# Environment:
#   FUZZ_SECONDS  total time budget shared by the targets (default 60)
#   FUZZ_ENGINE   libfuzzer (clang++ -fsanitize=fuzzer), driver (g++ + fuzz/driver.cpp,
#                 coverage-guided through -fsanitize-coverage=trace-pc) or auto (default:
#                 libfuzzer when clang++ links it, else driver)
#   FUZZ_TIMEOUT  seconds one input may take (default 5)
#   FUZZ_SEED     the driver's PRNG seed (default 1; libFuzzer picks its own, printed)
#   FUZZ_OUT      build and work directory (default build/fuzz)
# Crashing inputs are written to $FUZZ_OUT/artifacts/. Reproduce one with
#   $FUZZ_OUT/<target> $FUZZ_OUT/artifacts/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(json safetensors_header checkpoint_index)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${ALL[@]}")
seconds=${FUZZ_SECONDS:-60}
timeout=${FUZZ_TIMEOUT:-5}
seed=${FUZZ_SEED:-1}
out=${FUZZ_OUT:-build/fuzz}
engine=${FUZZ_ENGINE:-auto}
mkdir -p "$out/artifacts"

sources_of() {
  local r=native/runtime
  case "$1" in
    json) echo "$r/json.cpp" ;;
    safetensors_header) echo "$r/json.cpp $r/mapped_file.cpp $r/safetensors.cpp" ;;
    checkpoint_index) echo "$r/json.cpp $r/mapped_file.cpp $r/safetensors.cpp $r/checkpoint.cpp" ;;
    *) echo "fuzz/run.sh: unknown target '$1' (known: ${ALL[*]})" >&2; exit 2 ;;
  esac
}

CXXFLAGS_COMMON=(-std=c++17 -g -O1 -fno-omit-frame-pointer -Inative -I.
  -fsanitize=address,undefined -fno-sanitize-recover=undefined)

if [ "$engine" = auto ]; then
  engine=driver
  if command -v clang++ >/dev/null 2>&1 &&
     echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
       clang++ -x c++ -fsanitize=fuzzer - -o "$out/.probe" >/dev/null 2>&1; then
    engine=libfuzzer
  fi
  rm -f "$out/.probe"
fi

build() {
  local t=$1 bin=$out/$1
  # shellcheck disable=SC2046
  if [ "$engine" = libfuzzer ]; then
    clang++ "${CXXFLAGS_COMMON[@]}" -fsanitize=fuzzer "fuzz/$t.cpp" $(sources_of "$t") -o "$bin"
  else
    local objs=()
    for src in "fuzz/$t.cpp" $(sources_of "$t"); do
      local o="$out/obj-$t-$(echo "${src%.cpp}" | tr / _).o"
      g++ "${CXXFLAGS_COMMON[@]}" -fsanitize-coverage=trace-pc -c "$src" -o "$o"
      objs+=("$o")
    done
    g++ "${CXXFLAGS_COMMON[@]}" -c fuzz/driver.cpp -o "$out/obj-driver.o"
    g++ -fsanitize=address,undefined "${objs[@]}" "$out/obj-driver.o" -o "$bin"
  fi
}

n=${#targets[@]}
per=$(( seconds / n )); [ "$per" -lt 1 ] && per=1
echo "fuzz: engine $engine, ${per}s per target (${seconds}s budget), targets: ${targets[*]}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0:max_allocation_size_mb=2048:hard_rss_limit_mb=3072:abort_on_error=0:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
summary="$out/summary.txt"
: > "$summary"
status=0
for t in "${targets[@]}"; do
  build "$t"
  corpus=fuzz/corpus/$t
  [ -d "$corpus" ] || { echo "fuzz: no corpus at $corpus" >&2; exit 2; }
  log=$out/$t.log
  set +e
  if [ "$engine" = libfuzzer ]; then
    work=$out/work-$t
    rm -rf "$work"; mkdir -p "$work"   # new inputs go here, never into the committed corpus
    "$out/$t" -max_total_time="$per" -timeout="$timeout" -rss_limit_mb=3072 -max_len=65536 \
      -artifact_prefix="$out/artifacts/$t-" -print_final_stats=1 "$work" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  else
    "$out/$t" -seconds="$per" -timeout="$timeout" -max_len=65536 -seed="$seed" \
      -artifact_prefix="$out/artifacts/$t-" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/.*done: \([0-9]*\) inputs tried.*/\1/p' "$log" | tail -1)
  fi
  set -e
  if [ $rc -ne 0 ]; then
    echo "fuzz: $t FAILED (exit $rc); last lines of $log:" >&2
    tail -40 "$log" >&2
    status=1
    echo "$t failed exit=$rc" >> "$summary"
  else
    echo "fuzz: $t ok, ${execs:-?} inputs in ${per}s"
    echo "$t ok execs=${execs:-?} seconds=$per engine=$engine" >> "$summary"
  fi
done
exit $status
