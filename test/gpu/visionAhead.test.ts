/**
 * Vision ahead on the GPU (`visionAhead: true`; off by default until it has passed here and
 * measured a gain, issue #8): the ViT runs on a stream and allocator of its own (a second logical
 * device on the same GPU), on its own thread, while two requests decode on the LLM's stream.
 * Every token of every request must be the fp32 CPU engine's greedy choice after its prefix up to
 * bf16 near-ties (test/helpers/oracle.ts; the CPU run, test/engine/visionAhead.test.ts, asserts
 * exact goldens), the tiles really were encoded ahead, an out-of-memory on the vision device hands
 * them back to the prefill step, and the KV cache is all free afterwards.
 */
import { expectAllFree, goldenRequest, nativeOf, testingHooks } from '../helpers/faultHooks.js';
import type { GoldenSample } from '../helpers/goldens.js';
import { describeGpuGoldenSuite, twoDecoding } from '../helpers/gpuGoldenSuite.js';
import { BF16_GREEDY_TOL, greedyGapUnderOracle } from '../helpers/oracle.js';

const VISION_DEVICE = 1; // the trivial map plus the vision's own logical device

describeGpuGoldenSuite('vision-ahead', { visionAhead: true }, ({ golden, samples, background, gpu: gpuModel, cpu }) => {
  const withImage = samples.filter((s) => s.images.length > 0);
  const greedyUnderOracle = async (s: GoldenSample, ids: number[]) =>
    expect(await greedyGapUnderOracle(cpu(), s, ids)).toBeLessThan(BF16_GREEDY_TOL);

  test('prompts arriving beside running sequences: every token greedy under the fp32 oracle, tiles encoded ahead', async () => {
    const gpu = gpuModel();
    const st0 = gpu.stats();
    const running = await twoDecoding(gpu, background);
    const results = await Promise.all(samples.map((s) => gpu.generate(goldenRequest(s, golden.eos_token_id)).promise));
    const back = await Promise.all(running.map((g) => g.promise));
    if (withImage.length > 0) expect(gpu.stats().visionAheadTiles).toBeGreaterThan(st0.visionAheadTiles);
    for (let i = 0; i < samples.length; i++) {
      const ids = Array.from(results[i][0].tokenIds);
      expect(ids.length).toBeGreaterThan(0);
      await greedyUnderOracle(samples[i], ids);
    }
    for (const [r] of back) {
      expect(r.tokenIds.length).toBe(160);
      await greedyUnderOracle(background, Array.from(r.tokenIds));
    }
    expectAllFree(gpu.stats());
  });

  test('out of memory on the vision device: the prefill step encodes the tiles, tokens still greedy', async () => {
    if (withImage.length === 0) return;
    const s = withImage[0];
    const gpu = gpuModel();
    const T = testingHooks();
    const n = nativeOf(gpu);
    const st0 = gpu.stats();
    const fired = T.faultsFired(n, VISION_DEVICE);
    try {
      T.armFault(n, 'oom-after=0', VISION_DEVICE);
      const [r] = await gpu.generate(goldenRequest(s, golden.eos_token_id)).promise;
      await greedyUnderOracle(s, Array.from(r.tokenIds));
    } finally {
      T.armFault(n, 'none', VISION_DEVICE);
    }
    expect(T.faultsFired(n, VISION_DEVICE)).toBe(fired + 1);
    const st1 = gpu.stats();
    expect(st1.visionAheadTiles).toBe(st0.visionAheadTiles);
    expect(st1.vitTiles).toBeGreaterThan(st0.vitTiles);
    expectAllFree(st1);
  });
});
