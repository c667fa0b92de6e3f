#!/usr/bin/env bash
# The whole GPU check in one short call (device time is scarce): builds the CUDA addon and the
# parity harness side by side, then in order of importance, each step time-boxed and all of it
# ending by DEADLINE seconds after the start:
#   1. the parity harness at full shapes (every backend op, CUDA vs the CPU oracle)
#   2. jest test/gpu (goldens on CUDA, int8, device map on virtual devices, API) except faults
#   3. jest test/gpu/faults.test.ts alone (it claims most of the GPU for a moment)
#   4. 40B decode batch 1 in int8 and bf16: wall clock per step (bench/profile.mjs), each twice,
#      alternating with each of DECODE_AB's switch sets; the parity harness runs four more times
#      after step 1, with INTERNVL_CUDA_PDL_ATTENTION=0, INTERNVL_CUDA_ATTN_FUSED_MERGE=1,
#      INTERNVL_CUDA_ATTN_EARLY_KV=0 and INTERNVL_CUDA_W8A16_SKINNY_FILL=0 NORMS=0
#   5. compute-sanitizer memcheck over the harness's --small cases, with the time left
# Logs go to $OUT (summary.txt first).
#   source .gpu/setup.sh && . scripts/gpu-unpack.sh && OUT=dir DEADLINE=300 scripts/gpu-final.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu-final}
DEADLINE=${DEADLINE:-540}
mkdir -p "$OUT"
t0=$SECONDS
say() { echo "[$((SECONDS - t0))s] $*" | tee -a "$OUT/summary.txt"; }
left() { local l=$((DEADLINE - (SECONDS - t0))); echo $(( l < $1 ? (l > 5 ? l : 5) : $1 )); }
J=(node --experimental-vm-modules --no-warnings=ExperimentalWarning node_modules/jest/bin/jest.js)

(BUILD_ONLY=1 PARITY_BUILD_DIR=build/parity timeout 200 cuda/dev/backend_parity.sh >"$OUT/build_parity.txt" 2>&1
 echo "rc=$?" >>"$OUT/build_parity.txt") &
parity=$!
INTERNVL_CUDA=ON timeout 200 node scripts/build-native.mjs >"$OUT/build.txt" 2>&1
say "addon build rc=$?"
npx tsc -p tsconfig.build.json >>"$OUT/build.txt" 2>&1
wait $parity
say "parity build $(tail -1 "$OUT/build_parity.txt")"
built=0; grep -q '^rc=0$' "$OUT/build_parity.txt" && built=1
if [[ $built == 1 ]]; then
  timeout "$(left ${PARITY_S:-90})" build/parity/backend_parity --json "$OUT/parity.jsonl" >"$OUT/parity.txt" 2>&1
  say "parity rc=$? $(tail -1 "$OUT/parity.txt")"
fi
if [[ $built == 1 ]]; then
  # decode attention without programmatic dependent launch (the path INTERNVL_CUDA_PDL=0 takes)
  INTERNVL_CUDA_PDL_ATTENTION=0 timeout "$(left 60)" build/parity/backend_parity >"$OUT/parity_pdl_attention.txt" 2>&1
  say "parity, INTERNVL_CUDA_PDL_ATTENTION=0: rc=$? $(tail -1 "$OUT/parity_pdl_attention.txt")"
  # decode attention merged by the last split CTA (opt-in, DecodePlan::fused_merge)
  INTERNVL_CUDA_ATTN_FUSED_MERGE=1 timeout "$(left 60)" build/parity/backend_parity >"$OUT/parity_fused_merge.txt" 2>&1
  say "parity, INTERNVL_CUDA_ATTN_FUSED_MERGE=1: rc=$? $(tail -1 "$OUT/parity_fused_merge.txt")"
  # every K/V tile loaded after the PDL wait (the rope in attention then reads its new key back)
  INTERNVL_CUDA_ATTN_EARLY_KV=0 timeout "$(left 60)" build/parity/backend_parity >"$OUT/parity_late_kv.txt" 2>&1
  say "parity, INTERNVL_CUDA_ATTN_EARLY_KV=0: rc=$? $(tail -1 "$OUT/parity_late_kv.txt")"
  # int8 rows 17..32 on the decode GEMV only (no wave fill through the split tensor-core tile),
  # and int8 decode norms composed (no deferred norm in the GEMVs)
  INTERNVL_CUDA_W8A16_SKINNY_FILL=0 INTERNVL_CUDA_W8A16_NORMS=0 timeout "$(left 60)" build/parity/backend_parity >"$OUT/parity_no_fill.txt" 2>&1
  say "parity, INTERNVL_CUDA_W8A16_SKINNY_FILL=0 INTERNVL_CUDA_W8A16_NORMS=0: rc=$? $(tail -1 "$OUT/parity_no_fill.txt")"
fi
timeout "$(left ${JEST_S:-120})" "${J[@]}" --testPathIgnorePatterns=faults.test -- test/gpu >"$OUT/jest.txt" 2>&1
say "jest test/gpu rc=$? $(grep -E '^Tests:' "$OUT/jest.txt")"
timeout "$(left ${FAULTS_S:-90})" "${J[@]}" --runInBand test/gpu/faults.test.ts >"$OUT/faults.txt" 2>&1
say "jest faults rc=$? $(grep -E '^Tests:' "$OUT/faults.txt")"
# Each dtype twice over (so the run-to-run spread shows), each time followed by the same with
# each of DECODE_AB's switch sets (';' between sets) when set: a same-session A/B of a new
# default, e.g. DECODE_AB='INTERNVL_CUDA_NORM_WIDE=0' (that one settled 2026-11-29,
# docs/ENGINE.md) or DECODE_AB='A=0;A=0 B=1'.
IFS=';' read -ra ABS <<<"${DECODE_AB:-}"
# DECODE_BATCH (default 1) sets the batch; a set's words starting with -- go to profile.mjs as
# flags, e.g. DECODE_AB='--no-mixed-steps'.
decode() {  # decode DTYPE LABEL [VAR=VALUE | --flag ...]
  local dt=$1 label=$2; shift 2
  local envs=() flags=()
  for w in "$@"; do [[ $w == --* ]] && flags+=("$w") || envs+=("$w"); done
  env "${envs[@]}" timeout "$(left 45)" node bench/profile.mjs --config bench/configs/InternVL2-40B.json --phase decode \
    --batch "${DECODE_BATCH:-1}" --steps 32 --reps 2 --dtype "$dt" "${flags[@]}" >>"$OUT/decode.txt" 2>&1
  say "40B decode $dt$label: rc=$? $(tail -1 "$OUT/decode.txt" | grep -oE '"step_ms":[0-9.]+')"
}
for dt in ${DECODE_DTYPES:-int8 bf16}; do
  for pass in 1 2; do
    decode "$dt" ""
    for ab in "${ABS[@]}"; do
      [[ -n ${ab// /} ]] && decode "$dt" ", $ab" $ab
    done
  done
done
if [[ $built == 1 ]]; then
  # API errors not reported: the harness asks for 128 TiB on purpose (ERR_OOM), and every CUDA
  # call's status is checked by the backend itself.
  timeout "$(left 600)" compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 9 build/parity/backend_parity --small \
    >"$OUT/memcheck.txt" 2>&1
  say "memcheck rc=$? (124: cut by the deadline) $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.txt" | tail -1)"
  grep -cE '^(ok|PASS)' "$OUT/memcheck.txt" | sed 's/^/memcheck cases passed before the end: /' | tee -a "$OUT/summary.txt"
fi
say "done"
