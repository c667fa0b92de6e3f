/**
 * Vision ahead on the GPU (`visionAhead: true`; off by default until it has passed here and
 * measured a gain, issue #8): the ViT runs on a stream and allocator of its own (a second logical
 * device on the same GPU), on its own thread, while two requests decode on the LLM's stream.
 * Every token of every request must be the fp32 CPU engine's greedy choice after its prefix up to
 * bf16 near-ties (test/helpers/oracle.ts; the CPU run, test/engine/visionAhead.test.ts, asserts
 * exact goldens), the tiles really were encoded ahead, an out-of-memory on the vision device hands
 * them back to the prefill step, and the KV cache is all free afterwards.
 */
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { expectAllFree, goldenRequest, longRequest, nativeOf, testingHooks } from '../helpers/faultHooks.js';
import { type GoldenSample, fixturesDir, goldenFamilies, goldenSamples, readModelGolden } from '../helpers/goldens.js';
import { cudaSkipReason } from '../helpers/gpu.js';
import { BF16_GREEDY_TOL, greedyGapUnderOracle } from '../helpers/oracle.js';

const reason = cudaSkipReason();
const imageContextOf = (g: unknown) => (g as { image_context_token_id: number }).image_context_token_id;
const VISION_DEVICE = 1; // the trivial map plus the vision's own logical device

if (reason) {
  test(`GPU vision-ahead suite skipped: ${reason}`, () => {
    expect(reason.length).toBeGreaterThan(0);
  });
} else {
  describe.each(goldenFamilies())('%s', (family) => {
    const golden = readModelGolden(family);
    const samples = goldenSamples(golden);
    const withImage = samples.filter((s) => s.images.length > 0);
    // the longest prompt, as in test/gpu/mixedSteps.test.ts (tiny-phi3's RoPE switch)
    const background = samples.reduce((a, b) => (b.input_ids.length > a.input_ids.length ? b : a));
    const dir = join(fixturesDir, golden.model_dir);
    let gpu: EngineModel;
    let cpu: EngineModel;
    beforeAll(async () => {
      const common = { imageContextTokenId: imageContextOf(golden), prefixCache: false, kvCacheTokens: 8192 };
      gpu = await EngineModel.load(dir, { ...common, backend: 'cuda', visionAhead: true });
      cpu = await EngineModel.load(dir, { ...common, threads: 2, kvCacheTokens: 1 << 17 });
    });
    afterAll(() => {
      gpu?.dispose();
      cpu?.dispose();
    });
    const greedyUnderOracle = async (s: GoldenSample, ids: number[]) =>
      expect(await greedyGapUnderOracle(cpu, s, ids)).toBeLessThan(BF16_GREEDY_TOL);

    test('prompts arriving beside running sequences: every token greedy under the fp32 oracle, tiles encoded ahead', async () => {
      const st0 = gpu.stats();
      let tokens = 0;
      let release!: () => void;
      const started = new Promise<void>((r) => (release = r));
      const running = [longRequest(background), longRequest(background)].map((r) =>
        gpu.generate(r, {
          onToken: () => {
            if (++tokens === 6) release();
          },
        }),
      );
      await started;
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
}
