/**
 * Whether a model runs mixed steps (LoadOptions.mixedSteps) when the caller does not say.
 *
 * On for CUDA models whose language model is at least 6144 wide (InternVL2-26B, -40B, -76B).
 * Same-session A/Bs on an H200 (load test, 32 streaming clients, 1-tile requests, README): at
 * 40B shapes they cut TTFT p99 from 407-442 ms to 277-297 ms with 2-5% more tokens/s; at 8B
 * (4096 wide) p99 was unchanged within noise (183/206 vs 164/214 ms) while p50 rose and tokens/s
 * fell 3-8%, because the decode rows lengthen the small model's prefill forward about as much as
 * the separate decode step they save. Off on the CPU backend: it serves tests and one request
 * at a time, where the two orders cost the same.
 */
export function mixedStepsDefault(backend: 'cpu' | 'cuda', llmHiddenSize: number): boolean {
  return backend === 'cuda' && llmHiddenSize >= MIXED_STEPS_MIN_HIDDEN;
}

/** The narrowest language model that gets mixed steps by default (InternLM2-20B, InternVL2-26B's). */
export const MIXED_STEPS_MIN_HIDDEN = 6144;
