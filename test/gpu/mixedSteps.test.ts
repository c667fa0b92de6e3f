/**
 * Mixed prefill+decode steps on the GPU (`mixedSteps: true`; off by default until this file has
 * passed on a GPU, issue #8): prompts prefilled in 16-token chunks while two requests decode, so
 * most steps carry both. Every token of every request must be the fp32 CPU engine's greedy
 * choice after its prefix up to bf16 near-ties (test/helpers/oracle.ts; the CPU run of the same
 * scenario, test/engine/mixedSteps.test.ts, asserts exact goldens), the steps really were mixed,
 * and the KV cache is all free afterwards.
 */
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { expectAllFree, goldenRequest, longRequest } from '../helpers/faultHooks.js';
import { type GoldenSample, fixturesDir, goldenFamilies, goldenSamples, readModelGolden } from '../helpers/goldens.js';
import { cudaSkipReason } from '../helpers/gpu.js';
import { BF16_GREEDY_TOL, greedyGapUnderOracle } from '../helpers/oracle.js';

const reason = cudaSkipReason();
const imageContextOf = (g: unknown) => (g as { image_context_token_id: number }).image_context_token_id;

if (reason) {
  test(`GPU mixed-steps suite skipped: ${reason}`, () => {
    expect(reason.length).toBeGreaterThan(0);
  });
} else {
  describe.each(goldenFamilies())('%s', (family) => {
    const golden = readModelGolden(family);
    const samples = goldenSamples(golden);
    // The background runs with the longest prompt: its whole run is then past tiny-phi3's
    // original_max_position_embeddings (64), as in the oracle's prefills. A run that crosses it
    // while decoding switches RoPE factors with its early keys cached under the short ones (as
    // transformers does), which a prefill of the same prefix cannot reproduce.
    const background = samples.reduce((a, b) => (b.input_ids.length > a.input_ids.length ? b : a));
    const dir = join(fixturesDir, golden.model_dir);
    let gpu: EngineModel;
    let cpu: EngineModel;
    beforeAll(async () => {
      const common = { imageContextTokenId: imageContextOf(golden), prefixCache: false, kvCacheTokens: 8192 };
      gpu = await EngineModel.load(dir, { ...common, backend: 'cuda', prefillChunkTokens: 16, mixedSteps: true });
      // the oracle teacher-forces a 160-token run as 160 sequences in one request
      cpu = await EngineModel.load(dir, { ...common, threads: 2, kvCacheTokens: 1 << 17 });
    });
    afterAll(() => {
      gpu?.dispose();
      cpu?.dispose();
    });

    test('prompts prefilled beside running sequences: every token greedy under the fp32 oracle, steps mixed', async () => {
      const mixed0 = gpu.stats().mixedSteps;
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
      await started; // both decoding: the golden prompts below are prefilled beside them
      const results = await Promise.all(samples.map((s) => gpu.generate(goldenRequest(s, golden.eos_token_id)).promise));
      const back = await Promise.all(running.map((g) => g.promise));
      expect(gpu.stats().mixedSteps).toBeGreaterThan(mixed0);
      for (let i = 0; i < samples.length; i++) {
        const ids = Array.from(results[i][0].tokenIds);
        expect(ids.length).toBeGreaterThan(0);
        expect(await greedyGapUnderOracle(cpu, samples[i], ids)).toBeLessThan(BF16_GREEDY_TOL);
      }
      for (const [r] of back) {
        const ids = Array.from(r.tokenIds);
        expect(ids.length).toBe(160);
        expect(await greedyGapUnderOracle(cpu, background, ids)).toBeLessThan(BF16_GREEDY_TOL);
      }
      expectAllFree(gpu.stats());
    });
  });
}
