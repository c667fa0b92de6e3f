/**
 * Mixed steps (EngineOptions::mixedSteps, `mixedSteps: true`), CPU backend: while new prompts
 * are prefilled (in chunks), the running sequences take their decode step inside the same
 * forward. Every sequence still gets exactly its tokens — the PyTorch goldens for the golden
 * prompts, the tokens of the same request run alone for the background one (greedy and seeded
 * sampling) — the steps really were mixed (stats), and a mixed step that fails puts every
 * sequence back where it was and runs the two steps apart (an injected out-of-memory there
 * costs nothing but a retry).
 */
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import type { NativeGenerateRequest, NativeSampling } from '../../lib/nativeTypes.js';
import { expectAllFree, goldenRequest, longRequest, nativeOf, stepEngine, testingHooks } from '../helpers/faultHooks.js';
import { type GoldenSample, fixturesDir, goldenFamilies, goldenSamples, readModelGolden } from '../helpers/goldens.js';

const imageContextOf = (g: unknown) => (g as { image_context_token_id: number }).image_context_token_id;
const SEEDED: NativeSampling = { doSample: true, temperature: 0.9, topK: 40, topP: 0.9, repetitionPenalty: 1.1, seed: 11 };

describe.each(goldenFamilies())('%s', (family) => {
  const golden = readModelGolden(family);
  const samples = goldenSamples(golden);
  const text = samples.find((s) => s.images.length === 0) as GoldenSample;
  let model: EngineModel;
  beforeAll(async () => {
    model = await EngineModel.load(join(fixturesDir, golden.model_dir), {
      imageContextTokenId: imageContextOf(golden),
      threads: 2,
      kvCacheTokens: 8192,
      prefillChunkTokens: 16, // every prompt takes several chunks: many steps to mix
      prefixCache: false,
      mixedSteps: true,
    });
  });
  afterAll(() => model?.dispose());

  test('prompts prefilled beside running sequences: the golden tokens, and the background as alone', async () => {
    const background: NativeGenerateRequest[] = [longRequest(text), { ...longRequest(text), sampling: SEEDED }];
    const alone = [];
    for (const r of background) alone.push(Array.from((await model.generate(r).promise)[0].tokenIds));
    const mixed0 = model.stats().mixedSteps;

    let tokens = 0;
    let release!: () => void;
    const started = new Promise<void>((r) => (release = r));
    const running = background.map((r) =>
      model.generate(r, {
        onToken: () => {
          if (++tokens === 6) release();
        },
      }),
    );
    await started; // both decoding: every golden prompt below is prefilled beside them
    const results = await Promise.all(samples.map((s) => model.generate(goldenRequest(s, golden.eos_token_id)).promise));
    for (let i = 0; i < samples.length; i++) expect(Array.from(results[i][0].tokenIds)).toEqual(samples[i].generated_ids);
    const back = await Promise.all(running.map((g) => g.promise));
    expect(back.map((r) => Array.from(r[0].tokenIds))).toEqual(alone);
    expect(model.stats().mixedSteps).toBeGreaterThan(mixed0);
    expectAllFree(model.stats());
  });

  // a text prompt fails at the forward's first allocation, after the step has appended every
  // sequence's new KV slots (they must be cut back); an image prompt fails in the ViT, before
  test.each(['text', 'image'])('out of memory inside a mixed step (%s prompt): both steps run again apart, nobody fails', async (kind) => {
    const T = testingHooks();
    const n = nativeOf(model);
    const image = kind === 'text' ? text : (samples.find((s) => s.images.length > 0) ?? text);
    const alone = Array.from((await model.generate(longRequest(text)).promise)[0].tokenIds);
    try {
      T.hold(n, 0);
      let aTokens = 0;
      const a = model.generate(longRequest(text), { onToken: () => aTokens++ });
      // A's prompt takes several 16-token chunks: step until it is decoding
      while (aTokens === 0) await stepEngine(model, 1);
      const st0 = model.stats();
      const b = model.generate(goldenRequest(image, golden.eos_token_id));
      const fired = T.faultsFired(n);
      T.armFault(n, 'oom-after=0'); // the next allocation: the mixed step's first
      await stepEngine(model, 1);
      expect(T.faultsFired(n)).toBe(fired + 1);
      expect(model.stats().mixedSteps).toBe(st0.mixedSteps); // the failed one is not counted
      T.hold(n, -1);
      const [[ra], [rb]] = await Promise.all([a.promise, b.promise]);
      expect(Array.from(ra.tokenIds)).toEqual(alone);
      expect(Array.from(rb.tokenIds)).toEqual(image.generated_ids);
      expectAllFree(model.stats());
    } finally {
      T.armFault(n, 'none');
      T.hold(n, -1);
    }
  });
});
