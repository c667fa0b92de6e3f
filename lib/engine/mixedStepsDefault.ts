/**
 * Whether a model runs mixed steps (LoadOptions.mixedSteps) when the caller does not say: on
 * for CUDA models, off on the CPU backend.
 *
 * Same-session A/Bs on an H200, four of them (load test, 32 streaming clients, 1-tile requests,
 * README; bench/results/mixedsteps-loadtest-*.json): at 40B shapes TTFT p99 407 → 279,
 * 442 → 297, 426 → 273 and 427 → 291 ms with 2-5% more tokens/s; at 8B p99 183 → 164,
 * 206 → 214, 368 → 215 and 308 → 150 ms with 0-8% fewer tokens/s (the decode rows lengthen the
 * small model's prefill forwards about as much as the separate decode step they save, but a
 * request arriving during an iteration no longer waits for that step before admission, which is
 * what the p99 is made of).
 * The CPU backend serves tests and one request at a time, where both orders cost the same.
 */
export function mixedStepsDefault(backend: 'cpu' | 'cuda'): boolean {
  return backend === 'cuda';
}
