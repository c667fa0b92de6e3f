/**
 * The engine thread and continuous batching (native/runtime/scheduler.*), CPU backend:
 * concurrent requests started at different times (some while others are mid-decode)
 * give exactly the tokens of the same requests run one at a time — the PyTorch goldens
 * through model.chat, sequential runs for seeded sampling — and batching really
 * happens (engine stats); cancelling one request leaves the others unchanged and gives
 * its KV blocks back; a request that does not fit the free blocks waits in the queue;
 * dispose with requests in flight resolves them all as 'aborted'.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { InternVL } from '../../lib/model.js';
import type { NativeGenerateRequest, NativeSampling, NativeSequenceResult } from '../../lib/nativeTypes.js';
import { GREEDY } from '../helpers/faultHooks.js';
import { type GoldenCase, fixturesDir, goldenFamilies, goldenPixels, readModelGolden } from '../helpers/goldens.js';
import { TINY, promptIds, tempDir, tinyPixels, writeTinyModel, type Family } from './tinyModel.js';

let root: string;
beforeAll(() => {
  root = tempDir('ivl-batching-');
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

async function load(family: Family, kvCacheTokens?: number): Promise<EngineModel> {
  const dir = writeTinyModel(join(root, `${family}-${Math.random().toString(36).slice(2)}`), { family });
  return EngineModel.load(dir, { imageContextTokenId: TINY.imageContextId, threads: 2, kvCacheTokens });
}

const textSeq = (ids: number[]) => ({ inputIds: Int32Array.from(ids) });
const imageSeq = (before: number[], tiles: number, after: number[], seed = 7) => ({
  inputIds: promptIds(before, tiles, after),
  pixelValues: tinyPixels(tiles, seed),
  tiles,
});

function request(
  sequences: NativeGenerateRequest['sequences'],
  maxNewTokens: number,
  sampling: NativeSampling = GREEDY,
  more: Partial<NativeGenerateRequest> = {},
): NativeGenerateRequest {
  return { sequences, maxNewTokens, eosTokenIds: [], sampling, ...more };
}

const ids = (r: NativeSequenceResult) => Array.from(r.tokenIds);
const blocksFor = (tokens: number, bs = 16) => Math.ceil(tokens / bs);

/** A generation plus a promise for its n-th streamed token (of any sequence). */
function start(model: EngineModel, req: NativeGenerateRequest, onToken?: (seq: number, id: number) => void) {
  let count = 0;
  const waiters: Array<[number, () => void]> = [];
  const gen = model.generate(req, {
    onToken: (s, t) => {
      count++;
      onToken?.(s, t);
      for (const [n, fire] of waiters) if (count >= n) fire();
    },
  });
  const tokens = (n: number) =>
    new Promise<void>((resolve) => {
      if (count >= n) resolve();
      else waiters.push([n, resolve]);
    });
  return { ...gen, tokens, count: () => count };
}

describe('model.chat: concurrent calls batch and still equal the PyTorch goldens', () => {
  const families = goldenFamilies();

  test.each(families)('%s: staggered chats beside a long background generation', async (family) => {
    const golden = readModelGolden(family);
    const model = await InternVL.load(join(fixturesDir, golden.model_dir), { backend: 'cpu' });
    try {
      const engine = (model as unknown as { engine: EngineModel }).engine;
      const cases = ['text', 'image', 'two_images', 'two_turn'].map((n) => golden.cases.find((c) => c.name === n) as GoldenCase);
      const args = (c: GoldenCase) => {
        const pv = (c.images ?? []).length > 0 ? goldenPixels(c.images as string[]) : undefined;
        return {
          question: c.question as string,
          history: (c.history ?? []).map(([question, answer]) => ({ question, answer })),
          ...(pv ? { pixelValues: pv, numPatchesList: c.num_patches_list } : {}),
          generation: { maxNewTokens: 24 },
        };
      };
      // A long greedy generation keeps the decode batch busy, so every chat below is
      // admitted while another sequence is mid-decode.
      const bg = start(engine, request([textSeq([5, 6, 7, 8])], 5000)); // 313 of 512 blocks
      await Promise.race([bg.tokens(3), bg.promise]);
      const chats: Array<Promise<Awaited<ReturnType<InternVL['chat']>>>> = [];
      for (const c of cases) {
        let first!: () => void;
        const started = new Promise<void>((r) => (first = r));
        chats.push(model.chat({ ...args(c), onToken: () => first() }));
        // the next chat starts once this one streams (it is then mid-generation)
        await Promise.race([started, chats.at(-1)]);
      }
      const results = await Promise.all(chats);
      results.forEach((r, i) => {
        expect(r.tokenIds).toEqual(cases[i].generated_ids);
        expect(r.response).toBe(cases[i].response);
      });
      const mid = engine.stats();
      expect(mid.maxBatchRequests).toBeGreaterThanOrEqual(2);
      bg.cancel();
      const [b] = await bg.promise;
      expect(b.finishReason).toBe('aborted');
      const end = engine.stats();
      expect(end.kvFreeBlocks).toBe(end.kvBlocks);
      expect(end.runningRequests).toBe(0);
      expect(end.deviceMemory).toEqual([]); // the CPU backend has no device memory to report
    } finally {
      model.dispose();
    }
  });

  test.each(families)('%s: batchChat and chats at once equal the goldens', async (family) => {
    const golden = readModelGolden(family);
    const model = await InternVL.load(join(fixturesDir, golden.model_dir), { backend: 'cpu' });
    try {
      const batch = golden.cases.find((x) => x.name === 'batch') as GoldenCase;
      const text = golden.cases.find((x) => x.name === 'text') as GoldenCase;
      const samples = batch.samples ?? [];
      const [b, t1, t2] = await Promise.all([
        model.batchChat({
          questions: samples.map((s) => s.question),
          pixelValues: goldenPixels(samples.flatMap((s) => s.images)),
          numPatchesList: samples.map((s) => s.num_patches_list[0]),
          generation: { maxNewTokens: 24 },
        }),
        model.chat({ question: text.question as string, generation: { maxNewTokens: 24 } }),
        model.chat({ question: text.question as string, generation: { maxNewTokens: 24 } }),
      ]);
      b.results.forEach((r, i) => expect(r.tokenIds).toEqual(samples[i].generated_ids));
      expect(t1.tokenIds).toEqual(text.generated_ids);
      expect(t2.tokenIds).toEqual(text.generated_ids);
    } finally {
      model.dispose();
    }
  });
});

describe('EngineModel.generate: concurrent equals sequential', () => {
  const SAMPLED: NativeSampling = { doSample: true, temperature: 0.8, topK: 20, topP: 0.9, repetitionPenalty: 1.3, seed: 1234 };

  test.each<[Family, string, NativeSampling]>([
    ['qwen2', 'greedy', GREEDY],
    ['llama', 'seeded sampling', SAMPLED],
    ['phi3', 'seeded sampling, other seed', { ...SAMPLED, seed: 99, repetitionPenalty: 1.1 }],
    ['internlm2', 'greedy with repetition penalty', { ...GREEDY, repetitionPenalty: 1.2 }],
  ])('%s, %s: staggered requests give the tokens they give alone', async (family, _name, sampling) => {
    const model = await load(family);
    try {
      const reqs = [
        request([textSeq([1, 2, 3, 4, 5])], 400, sampling),
        request([imageSeq([1, 9], 2, [7, 8, 11]), textSeq([3, 1, 4, 1, 5])], 150, { ...sampling, seed: sampling.seed + 1 }),
        request([textSeq([9, 8, 7])], 60, sampling),
        request([imageSeq([4], 1, [5, 6], 11)], 200, sampling),
        request([textSeq([2, 7, 1, 8, 2, 8, 1, 8, 2, 8])], 1, sampling),
      ];
      const alone: NativeSequenceResult[][] = [];
      for (const r of reqs) alone.push(await model.generate(r).promise);
      const before = model.stats();

      // Start the first, then each next one once the previous has streamed a few tokens.
      const gens = [];
      for (const r of reqs) {
        const g = start(model, r);
        gens.push(g);
        await Promise.race([g.tokens(3), g.promise]);
      }
      const together = await Promise.all(gens.map((g) => g.promise));
      for (let i = 0; i < reqs.length; i++) {
        expect(together[i].length).toBe(alone[i].length);
        together[i].forEach((r, s) => {
          expect(ids(r)).toEqual(ids(alone[i][s]));
          expect(r.finishReason).toBe('length');
        });
      }
      const after = model.stats();
      expect(after.maxBatchRequests).toBeGreaterThanOrEqual(2);
      expect(after.maxBatchSequences).toBeGreaterThanOrEqual(3);
      expect(after.completedRequests - before.completedRequests).toBe(reqs.length);
      expect(after.kvFreeBlocks).toBe(after.kvBlocks);
    } finally {
      model.dispose();
    }
  });

  test('tokens stream in order per sequence while requests share steps', async () => {
    const model = await load('qwen2');
    try {
      const reqs = [request([textSeq([1, 2]), textSeq([3])], 80), request([textSeq([4, 5, 6])], 120)];
      const alone: NativeSequenceResult[][] = [];
      for (const r of reqs) alone.push(await model.generate(r).promise);
      const seen: number[][][] = reqs.map((r) => r.sequences.map(() => []));
      const gens = reqs.map((r, i) => start(model, r, (s, t) => seen[i][s].push(t)));
      const out = await Promise.all(gens.map((g) => g.promise));
      out.forEach((res, i) =>
        res.forEach((r, s) => {
          expect(seen[i][s]).toEqual(ids(r));
          expect(ids(r)).toEqual(ids(alone[i][s]));
        }),
      );
    } finally {
      model.dispose();
    }
  });
});

describe('cancellation, admission by free blocks, dispose', () => {
  test('cancelling one request mid-way leaves the others unchanged and returns its blocks at once', async () => {
    const model = await load('llama', 20000); // 1250 blocks: a, b and c fit together
    try {
      const a = request([textSeq([1, 2, 3, 4])], 3000);
      const b = request([textSeq([7, 7, 7]), textSeq([8]), textSeq([6, 5])], 3000); // 564 blocks, more than a + c
      const c = request([imageSeq([2], 1, [3])], 3000);
      const [refA] = await model.generate(a).promise;
      const refB = await model.generate(b).promise;
      const [refC] = await model.generate(c).promise;
      const total = model.stats().kvBlocks;
      const need = (r: NativeGenerateRequest) => r.sequences.reduce((n, s) => n + blocksFor(s.inputIds.length + r.maxNewTokens - 1), 0);

      const ga = start(model, a);
      const gb = start(model, b);
      const gc = start(model, c);
      await Promise.all([ga.tokens(5), gb.tokens(10), gc.tokens(5)]);
      gb.cancel();
      const rb = await gb.promise;
      const st = model.stats();
      // b's pages are back before its promise settles: at most a's and c's reservations are out
      expect(need(b)).toBeGreaterThan(need(a) + need(c));
      expect(st.kvFreeBlocks).toBeGreaterThanOrEqual(total - need(a) - need(c));
      if (st.runningRequests === 2) expect(st.kvFreeBlocks).toBe(total - need(a) - need(c));
      for (let s = 0; s < 3; s++) {
        expect(rb[s].finishReason).toBe('aborted');
        expect(rb[s].tokenIds.length).toBeLessThan(3000);
        expect(ids(rb[s])).toEqual(ids(refB[s]).slice(0, rb[s].tokenIds.length)); // a prefix of its own run
      }
      const [ra] = await ga.promise;
      const [rc] = await gc.promise;
      expect(ids(ra)).toEqual(ids(refA));
      expect(ids(rc)).toEqual(ids(refC));
      expect(model.stats().kvFreeBlocks).toBe(total);
    } finally {
      model.dispose();
    }
  });

  test('a request that does not fit the free blocks waits, then runs; one larger than the cache fails at once', async () => {
    const model = await load('qwen2', 1024); // 64 blocks
    try {
      expect(model.stats()).toMatchObject({ kvBlocks: 64, kvFreeBlocks: 64, queuedRequests: 0 });
      const big = request([textSeq([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])], 1014); // 1023 tokens: all 64 blocks
      const small = request([textSeq([5, 4, 3])], 12);
      const [refSmall] = await model.generate(small).promise;
      const [refBig] = await model.generate(big).promise;

      const order: string[] = [];
      const gBig = start(model, big);
      await gBig.tokens(3);
      const gSmall = start(model, small);
      gBig.promise.then(() => order.push('big'));
      gSmall.promise.then(() => order.push('small'));
      await gBig.tokens(gBig.count() + 2); // a couple of steps later, small is still queued
      const st = model.stats();
      expect(st.kvFreeBlocks).toBe(0);
      expect(st.queuedRequests).toBe(1);
      expect(gSmall.count()).toBe(0);
      // needs 65 blocks of 64: refused at once, even while big runs
      await expect(model.generate(request([textSeq(Array(20).fill(3))], 1020)).promise).rejects.toMatchObject({
        code: 'ERR_OOM',
        message: expect.stringContaining('need 65 blocks of 16 tokens, but 0 of 64 blocks are free'),
      });
      const [rBig] = await gBig.promise;
      const [rSmall] = await gSmall.promise;
      expect(order).toEqual(['big', 'small']);
      expect(ids(rBig)).toEqual(ids(refBig));
      expect(ids(rSmall)).toEqual(ids(refSmall));
      expect(model.stats()).toMatchObject({ kvFreeBlocks: 64, queuedRequests: 0, runningRequests: 0 });
    } finally {
      model.dispose();
    }
  });

  test('a cancelled queued request finishes without running', async () => {
    const model = await load('phi3', 256); // 16 blocks
    try {
      const big = start(model, request([textSeq([1, 2, 3])], 250)); // 16 blocks
      await big.tokens(2);
      const queued = start(model, request([textSeq([4])], 5));
      queued.cancel();
      const [q] = await queued.promise;
      expect(q.finishReason).toBe('aborted');
      expect(q.tokenIds.length).toBe(0);
      expect(q.promptTokens).toBe(1);
      const [b] = await big.promise;
      expect(b.tokenIds.length).toBe(250);
    } finally {
      model.dispose();
    }
  });

  test('dispose with running and queued requests resolves them all as aborted', async () => {
    const model = await load('internlm2', 512); // 32 blocks
    const a = start(model, request([textSeq([1, 2, 3])], 200)); // 13 blocks
    const b = start(model, request([imageSeq([1], 1, [2])], 200)); // 13 blocks
    const c = start(model, request([textSeq([9, 9])], 300)); // 19 blocks: waits
    await Promise.all([a.tokens(5), b.tokens(5)]);
    expect(model.stats()).toMatchObject({ runningRequests: 2, queuedRequests: 1 });
    model.dispose();
    const [ra, rb, rc] = (await Promise.all([a.promise, b.promise, c.promise])).map((r) => r[0]);
    for (const r of [ra, rb, rc]) expect(r.finishReason).toBe('aborted');
    expect(ra.tokenIds.length).toBeLessThan(200);
    expect(rc.tokenIds.length).toBe(0);
    expect(() => model.stats()).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
    expect(() => model.generate(request([textSeq([1])], 3))).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
  });

  test('many short concurrent requests on a small cache all complete correctly', async () => {
    const model = await load('llama', 160); // 10 blocks
    try {
      const reqs = Array.from({ length: 12 }, (_, i) =>
        request([textSeq([1 + (i % 5), 2 + (i % 7), 3])], 10 + 3 * i, { ...GREEDY, repetitionPenalty: i % 2 ? 1.15 : 1 }),
      );
      const alone: NativeSequenceResult[] = [];
      for (const r of reqs) alone.push((await model.generate(r).promise)[0]);
      const together = await Promise.all(reqs.map((r) => model.generate(r).promise));
      together.forEach(([r], i) => expect(ids(r)).toEqual(ids(alone[i])));
      expect(model.stats()).toMatchObject({ kvFreeBlocks: 10, queuedRequests: 0, runningRequests: 0 });
    } finally {
      model.dispose();
    }
  });
});
