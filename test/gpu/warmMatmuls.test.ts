/**
 * Matmul shapes warmed at load (EngineOptions::warmMatmulShapes), on the GPU: the CUDA backend
 * picks (and for up to 32 rows times) a cuBLASLt kernel the first time it meets a shape, which in
 * live steps cost the first requests after a start their latency (issue #8: the 40B's first round
 * of 32 clients ran single-prompt steps of ~90 ms against ~64 once every batch size had been
 * seen). So a fresh load has planned every decode shape of its decoder linears and head at 2..32
 * rows (one row runs the streaming GEMV, which plans nothing), and decode steps at any batch
 * size then plan nothing new: after a prompt has been prefilled once, running it again with
 * decode steps adds no plan.
 */
import { goldenRequest, nativeOf, testingHooks } from '../helpers/faultHooks.js';
import { describeGpuGoldenSuite } from '../helpers/gpuGoldenSuite.js';

describeGpuGoldenSuite('matmul warm-up', {}, ({ golden, samples, gpu }) => {
  test('every decode shape is planned at load; decode steps at 1-3 rows add no plan', async () => {
    const T = testingHooks();
    const n = nativeOf(gpu());
    const atLoad = T.matmulShapesPlanned(n);
    // at least qkv (stacked or q and k = v), o, gate/up, down and the head, each at rows 2..32
    // (a single row takes the streaming GEMV, cuda/gemv_bf16.h, which needs no plan)
    expect(atLoad).toBeGreaterThanOrEqual(5 * 31);
    const s = samples.find((x) => x.images.length === 0) ?? samples[0];
    const prefillOnly = { ...goldenRequest(s, golden.eos_token_id), maxNewTokens: 1, eosTokenIds: [] };
    for (const rows of [1, 3]) {
      const batch = { ...prefillOnly, sequences: Array.from({ length: rows }, () => prefillOnly.sequences[0]) };
      await gpu().generate(batch).promise; // the prompt's prefill shapes (M = rows · prompt) are new
      const afterPrefill = T.matmulShapesPlanned(n);
      await gpu().generate({ ...batch, maxNewTokens: 12 }).promise; // same prefill, then decode steps
      expect(T.matmulShapesPlanned(n)).toBe(afterPrefill);
    }
  });
});
