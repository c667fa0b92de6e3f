/**
 * Engine-side request timings (SequenceResult queueMs / firstTokenMs, stats' sums, chat()'s
 * Timings): how long a request waited for admission and for its first token, from its
 * submission to the engine. Checked against what the test itself arranges and measures: a
 * request held before admission for a known time reports at least that wait; the first token
 * comes after admission and within the request's JS-measured wall time; the stats' sums grow
 * by exactly the per-request figures; a request cancelled before admission reports neither.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { InternVL } from '../../lib/model.js';
import { goldenRequest, nativeOf, testingHooks, waitUntil } from '../helpers/faultHooks.js';
import { type GoldenSample, fixturesDir, goldenFamilies, goldenSamples, readModelGolden } from '../helpers/goldens.js';

const family = goldenFamilies()[0];
const golden = readModelGolden(family);
const sample = goldenSamples(golden).find((s) => s.images.length > 0) as GoldenSample;
const imageContextTokenId = (golden as unknown as { image_context_token_id: number }).image_context_token_id;

describe(`request timings (${family})`, () => {
  let model: EngineModel;
  beforeAll(async () => {
    model = await EngineModel.load(join(fixturesDir, golden.model_dir), { imageContextTokenId, threads: 2, prefixCache: false });
  });
  afterAll(() => model?.dispose());

  test('a request: admitted, then its first token, both within its wall time; the stats sum exactly these', async () => {
    const st0 = model.stats();
    const t0 = performance.now();
    const [r] = await model.generate(goldenRequest(sample, golden.eos_token_id)).promise;
    const wall = performance.now() - t0;
    expect(r.queueMs).toBeGreaterThanOrEqual(0);
    expect(r.firstTokenMs).toBeGreaterThan(r.queueMs as number);
    expect(r.firstTokenMs).toBeLessThanOrEqual(wall);
    const st1 = model.stats();
    expect(st1.firstTokens - st0.firstTokens).toBe(1);
    expect(st1.firstTokenWaitMs - st0.firstTokenWaitMs).toBeCloseTo(r.firstTokenMs as number, 6);
    expect(st1.queueWaitMs - st0.queueWaitMs).toBeCloseTo(r.queueMs as number, 6);
    expect(st1.admittedRequests - st0.admittedRequests).toBe(1);
  });

  test('held before admission for 150 ms: queueMs reports the wait, firstTokenMs comes after it', async () => {
    const T = testingHooks();
    const n = nativeOf(model);
    try {
      T.hold(n, 0); // the engine thread admits nothing until released
      await waitUntil(() => T.held(n) || model.stats().runningRequests === 0, 'the engine to hold');
      const g = model.generate(goldenRequest(sample, golden.eos_token_id));
      await new Promise((r) => setTimeout(r, 150));
      expect(model.stats().queuedRequests).toBe(1);
      T.hold(n, -1);
      const [r] = await g.promise;
      expect(r.queueMs).toBeGreaterThanOrEqual(140);
      expect(r.firstTokenMs).toBeGreaterThan(r.queueMs as number);
      expect(Array.from(r.tokenIds)).toEqual(sample.generated_ids);
    } finally {
      T.hold(n, -1);
    }
  });

  test('two sequences in one request: one shared admission, a first token each, both counted', async () => {
    const T = testingHooks();
    const n = nativeOf(model);
    const text = goldenSamples(golden).find((s) => s.images.length === 0) as GoldenSample;
    const one = goldenRequest(sample, golden.eos_token_id);
    const req = { ...one, sequences: [...one.sequences, ...goldenRequest(text, golden.eos_token_id).sequences] };
    const st0 = model.stats();
    try {
      T.hold(n, 0);
      await waitUntil(() => T.held(n) || model.stats().runningRequests === 0, 'the engine to hold');
      const t0 = performance.now();
      const g = model.generate(req);
      await new Promise((r) => setTimeout(r, 60));
      T.hold(n, -1);
      const rs = await g.promise;
      const wall = performance.now() - t0;
      expect(rs).toHaveLength(2);
      // one admission for the request: every sequence reports the same queue time, counted once
      expect(rs[1].queueMs).toBe(rs[0].queueMs);
      expect(rs[0].queueMs).toBeGreaterThanOrEqual(50);
      const st1 = model.stats();
      expect(st1.queueWaitMs - st0.queueWaitMs).toBeCloseTo(rs[0].queueMs as number, 6);
      expect(st1.admittedRequests - st0.admittedRequests).toBe(1); // one request, two sequences
      for (const r of rs) {
        expect(r.firstTokenMs).toBeGreaterThan(r.queueMs as number);
        expect(r.firstTokenMs).toBeLessThanOrEqual(wall);
      }
      expect(st1.firstTokens - st0.firstTokens).toBe(2);
      expect(st1.firstTokenWaitMs - st0.firstTokenWaitMs).toBeCloseTo((rs[0].firstTokenMs as number) + (rs[1].firstTokenMs as number), 6);
    } finally {
      T.hold(n, -1);
    }
  });

  test('cancelled while queued: no queue or first-token time', async () => {
    const T = testingHooks();
    const n = nativeOf(model);
    const st0 = model.stats();
    try {
      T.hold(n, 0);
      const g = model.generate(goldenRequest(sample, golden.eos_token_id));
      g.cancel();
      T.hold(n, -1);
      const [r] = await g.promise;
      expect(r.finishReason).toBe('aborted');
      expect(r.queueMs).toBeUndefined();
      expect(r.firstTokenMs).toBeUndefined();
      expect(model.stats().firstTokens).toBe(st0.firstTokens);
      expect(model.stats().admittedRequests).toBe(st0.admittedRequests); // never admitted: no queue-wait sample
    } finally {
      T.hold(n, -1);
    }
  });
});

describe(`chat() timings (${family})`, () => {
  test('carry the engine figures: first token after admission, inside generateMs', async () => {
    await using m = await InternVL.load(join(fixturesDir, golden.model_dir), { backend: 'cpu' });
    const r = await m.chat({ question: 'Hello there', generation: { maxNewTokens: 4 } });
    expect(r.timings.queueMs).toBeGreaterThanOrEqual(0);
    expect(r.timings.firstTokenMs).toBeGreaterThan(r.timings.queueMs as number);
    expect(r.timings.firstTokenMs).toBeLessThanOrEqual(r.timings.generateMs);
    const b = await m.batchChat({ questions: ['One', 'Two'], generation: { maxNewTokens: 3 } });
    expect(b.timings.firstTokenMs).toBeGreaterThan(0);
    expect(b.timings.firstTokenMs).toBeLessThanOrEqual(b.timings.generateMs);
  });
});
