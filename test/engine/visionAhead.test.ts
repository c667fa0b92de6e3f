/**
 * Vision ahead (EngineOptions::visionAhead, `visionAhead: true`), CPU backend: the vision encoder
 * gets a logical device of its own and a thread that runs each submitted request's tiles through
 * the ViT while the engine thread steps the running requests. Every request still gets exactly
 * its tokens — the PyTorch goldens for the golden prompts, its alone-tokens for a request running
 * beside them — the tiles really went the ahead way (stats), and what can go wrong there leaves
 * nothing behind: an encode that runs out of memory hands its tiles back to the prefill step
 * (same tokens), a request cancelled while its tiles are encoded ends aborted with every page
 * free, and a prompt whose image the prefix cache holds is not encoded again.
 */
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import type { NativeGenerateRequest } from '../../lib/nativeTypes.js';
import { expectAllFree, goldenRequest, longRequest, nativeOf, testingHooks } from '../helpers/faultHooks.js';
import { type GoldenSample, fixturesDir, goldenFamilies, goldenSamples, readModelGolden } from '../helpers/goldens.js';

const imageContextOf = (g: unknown) => (g as { image_context_token_id: number }).image_context_token_id;
// a trivial device map plus the vision's own device: logical device 1
const VISION_DEVICE = 1;

describe.each(goldenFamilies())('%s', (family) => {
  const golden = readModelGolden(family);
  const samples = goldenSamples(golden);
  const text = samples.find((s) => s.images.length === 0) as GoldenSample;
  const withImage = samples.filter((s) => s.images.length > 0);
  const tilesOf = (s: GoldenSample) => s.num_patches_list.reduce((a, b) => a + b, 0);
  const load = (prefixCache: boolean) =>
    EngineModel.load(join(fixturesDir, golden.model_dir), {
      imageContextTokenId: imageContextOf(golden),
      threads: 2,
      kvCacheTokens: 8192,
      prefixCache,
      visionAhead: true,
    });
  let model: EngineModel;
  beforeAll(async () => {
    model = await load(false);
  });
  afterAll(() => model?.dispose());

  test('golden prompts arriving beside a running request: the golden tokens, its alone-tokens, tiles encoded ahead', async () => {
    const background: NativeGenerateRequest = longRequest(text);
    const alone = Array.from((await model.generate(background).promise)[0].tokenIds);
    const st0 = model.stats();
    let tokens = 0;
    let release!: () => void;
    const started = new Promise<void>((r) => (release = r));
    const running = model.generate(background, {
      onToken: () => {
        if (++tokens === 3) release();
      },
    });
    await started; // decoding: the prompts below are submitted while it steps
    const results = await Promise.all(samples.map((s) => model.generate(goldenRequest(s, golden.eos_token_id)).promise));
    for (let i = 0; i < samples.length; i++) expect(Array.from(results[i][0].tokenIds)).toEqual(samples[i].generated_ids);
    expect(Array.from((await running.promise)[0].tokenIds)).toEqual(alone);
    const st1 = model.stats();
    const tiles = withImage.reduce((a, s) => a + tilesOf(s), 0);
    // distinct images are encoded once per batch: at most every tile, at least one batch's worth
    expect(st1.visionAheadTiles - st0.visionAheadTiles).toBeGreaterThan(0);
    expect(st1.visionAheadTiles - st0.visionAheadTiles).toBeLessThanOrEqual(tiles);
    expect(st1.vitTiles - st0.vitTiles).toBe(st1.visionAheadTiles - st0.visionAheadTiles); // none in a prefill step
    expectAllFree(st1);
  });

  test('out of memory in the ahead encode: the prefill step encodes the tiles instead, same tokens', async () => {
    if (withImage.length === 0) return;
    const s = withImage[0];
    const T = testingHooks();
    const n = nativeOf(model);
    const st0 = model.stats();
    const fired = T.faultsFired(n, VISION_DEVICE);
    try {
      T.armFault(n, 'oom-after=0', VISION_DEVICE); // the vision device's next allocation: the ahead encode's first
      const [r] = await model.generate(goldenRequest(s, golden.eos_token_id)).promise;
      expect(Array.from(r.tokenIds)).toEqual(s.generated_ids);
    } finally {
      T.armFault(n, 'none', VISION_DEVICE);
    }
    expect(T.faultsFired(n, VISION_DEVICE)).toBe(fired + 1);
    const st1 = model.stats();
    expect(st1.visionAheadTiles).toBe(st0.visionAheadTiles); // the ahead encode failed ...
    expect(st1.vitTiles - st0.vitTiles).toBe(tilesOf(s)); // ... and the prefill step ran them
    expectAllFree(st1);
  });

  test('cancelled right after submission (queued for the vision thread or being encoded): aborted, every page free, the next request unaffected', async () => {
    if (withImage.length === 0) return;
    const s = withImage[withImage.length - 1];
    const g = model.generate(goldenRequest(s, golden.eos_token_id));
    g.cancel();
    const [r] = await g.promise;
    expect(r.finishReason).toBe('aborted');
    expectAllFree(model.stats());
    const [again] = await model.generate(goldenRequest(s, golden.eos_token_id)).promise;
    expect(Array.from(again.tokenIds)).toEqual(s.generated_ids);
  });

  test('a prompt whose image the prefix cache holds is not encoded again, ahead or in its step', async () => {
    if (withImage.length === 0) return;
    const s = withImage[0];
    const cached = await load(true);
    try {
      const [first] = await cached.generate(goldenRequest(s, golden.eos_token_id)).promise;
      expect(Array.from(first.tokenIds)).toEqual(s.generated_ids);
      const st0 = cached.stats();
      expect(st0.visionAheadTiles).toBe(tilesOf(s));
      const [second] = await cached.generate(goldenRequest(s, golden.eos_token_id)).promise;
      expect(Array.from(second.tokenIds)).toEqual(s.generated_ids);
      const st1 = cached.stats();
      expect(st1.prefixHitTokens).toBeGreaterThan(st0.prefixHitTokens);
      expect(st1.vitTiles).toBe(st0.vitTiles);
      expect(st1.visionAheadTiles).toBe(st0.visionAheadTiles);
      expectAllFree(st1);
    } finally {
      cached.dispose();
    }
  });
});
