/**
 * Engine behaviour on synthetic tiny checkpoints (every family, both InternViT
 * styles): loading, info, batching equal to one-at-a-time, stop rules, callbacks,
 * cancellation, dispose during generation, KV capacity errors.
 * Numerical parity with PyTorch is in parity.test.ts (goldens).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { InternVLError } from '../../lib/errors.js';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import type { NativeGenerateRequest, NativeSequenceResult } from '../../lib/nativeTypes.js';
import { TINY, promptIds, tempDir, tinyPixels, writeTinyModel, type Family } from './tinyModel.js';
import { GREEDY } from '../helpers/faultHooks.js';

const FAMILIES: Family[] = ['llama', 'internlm2', 'qwen2', 'phi3'];

let root: string;
beforeAll(() => {
  root = tempDir();
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

async function load(family: Family, extra: Partial<Parameters<typeof writeTinyModel>[1]> = {}, kvCacheTokens?: number) {
  const dir = writeTinyModel(join(root, `${family}-${Math.random().toString(36).slice(2)}`), { family, ...extra });
  return EngineModel.load(dir, { imageContextTokenId: TINY.imageContextId, threads: 2, kvCacheTokens });
}

function request(sequences: NativeGenerateRequest['sequences'], maxNewTokens = 8, more: Partial<NativeGenerateRequest> = {}): NativeGenerateRequest {
  return { sequences, maxNewTokens, eosTokenIds: [], sampling: GREEDY, returnPromptLogits: true, ...more };
}

const textSeq = (ids: number[]) => ({ inputIds: Int32Array.from(ids) });
const imageSeq = (before: number[], tiles: number, after: number[], seed = 7) => ({
  inputIds: promptIds(before, tiles, after),
  pixelValues: tinyPixels(tiles, seed),
  tiles,
});

describe.each(FAMILIES)('%s (synthetic)', (family) => {
  let model: EngineModel;
  beforeAll(async () => {
    model = await load(family);
  });
  afterAll(() => model.dispose());

  test('info describes the model', () => {
    const info = model.info();
    expect(info).toMatchObject({
      family,
      vocabSize: TINY.vocab,
      hiddenSize: TINY.hidden,
      numImageToken: TINY.numImageToken,
      imageSize: TINY.tile,
      imageContextTokenId: TINY.imageContextId,
      contextLength: 4096,
      backend: 'cpu',
      kvBlockSize: 16,
      kvBlocks: 8192 / 16,
      vitHiddenSize: TINY.vitHidden,
      vitTokens: 17,
    });
  });

  test('encodeVit / encodeImages give [tiles, tokens, width]', async () => {
    const px = tinyPixels(2);
    const vit = await model.encodeVit(px, 2);
    expect(vit.length).toBe(2 * 17 * TINY.vitHidden);
    const emb = await model.encodeImages(px, 2);
    expect(emb.length).toBe(2 * TINY.numImageToken * TINY.hidden);
    expect(emb.every(Number.isFinite)).toBe(true);
    // tiles are independent: tile 1 alone equals tile 1 of the pair
    const one = await model.encodeImages(px.subarray(3 * TINY.tile * TINY.tile), 1);
    expect(Array.from(one)).toEqual(Array.from(emb.subarray(TINY.numImageToken * TINY.hidden)));
  });

  test('a batch of different lengths equals one sequence at a time, bit for bit', async () => {
    const seqs = [textSeq([1, 2, 3, 4, 5]), imageSeq([1, 9], 2, [7, 8, 11]), textSeq([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3])];
    const together = await model.generate(request(seqs, 12)).promise;
    for (let i = 0; i < seqs.length; i++) {
      const [alone] = await model.generate(request([seqs[i]], 12)).promise;
      expect(Array.from(together[i].tokenIds)).toEqual(Array.from(alone.tokenIds));
      expect(Array.from(together[i].promptLogits!)).toEqual(Array.from(alone.promptLogits!));
      expect(together[i].promptTokens).toBe(seqs[i].inputIds.length);
      expect(together[i].finishReason).toBe('length');
      expect(together[i].tokenIds.length).toBe(12);
    }
  });

  test('greedy first token is the argmax of the prompt logits; images change the logits', async () => {
    const [r] = await model.generate(request([imageSeq([1, 2], 1, [3])], 1)).promise;
    const logits = Array.from(r.promptLogits!);
    expect(logits.length).toBe(TINY.vocab);
    expect(r.tokenIds[0]).toBe(logits.indexOf(Math.max(...logits)));
    const [r2] = await model.generate(request([imageSeq([1, 2], 1, [3], 99)], 1)).promise;
    expect(Array.from(r2.promptLogits!)).not.toEqual(logits);
  });

  test('stops on any eos id (included in the output) and reports each token', async () => {
    const [free] = await model.generate(request([textSeq([5, 6, 7])], 6)).promise;
    const stopAt = free.tokenIds[2];
    const firstIdx = Array.from(free.tokenIds).indexOf(stopAt);
    const seen: Array<[number, number]> = [];
    const gen = model.generate(request([textSeq([5, 6, 7]), textSeq([9])], 6, { eosTokenIds: [127, stopAt] }), {
      onToken: (s, t) => seen.push([s, t]),
    });
    const [r, other] = await gen.promise;
    expect(r.finishReason).toBe('eos');
    expect(Array.from(r.tokenIds)).toEqual(Array.from(free.tokenIds.subarray(0, firstIdx + 1)));
    expect(seen.filter(([s]) => s === 0).map(([, t]) => t)).toEqual(Array.from(r.tokenIds));
    expect(seen.filter(([s]) => s === 1).map(([, t]) => t)).toEqual(Array.from(other.tokenIds));
  });
});

describe('engine requests and lifecycle', () => {
  let model: EngineModel;
  beforeAll(async () => {
    model = await load('qwen2', {}, 20000);
  });
  afterAll(() => model.dispose());

  test('image token count must match the tiles', async () => {
    const bad = { inputIds: promptIds([1], 1, [2]), pixelValues: tinyPixels(2), tiles: 2 };
    expect(() => model.generate(request([bad]))).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_ARG',
        message: `sequence 0: the prompt has 4 <IMG_CONTEXT> tokens (id ${TINY.imageContextId}) but 2 tile(s) give 8 image embeddings`,
      }),
    );
  });

  test('bad arguments name the field', async () => {
    expect(() => model.generate({ ...request([textSeq([1])]), maxNewTokens: -1 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('request.maxNewTokens') }),
    );
    expect(() => model.generate(request([{ inputIds: [1, 2] as unknown as Int32Array }]))).toThrow(
      'Expected Int32Array for request.sequences[0].inputIds but received array',
    );
    expect(() => model.generate(request([textSeq([1, 500])]))).toThrow(`sequence 0: token id 500 is out of range [0, ${TINY.vocab})`);
    await expect(model.encodeImages(new Float32Array(10), 1)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
  });

  test('maxNewTokens 0 returns only the prompt logits', async () => {
    const [r] = await model.generate(request([textSeq([1, 2])], 0)).promise;
    expect(r.tokenIds.length).toBe(0);
    expect(r.finishReason).toBe('length');
    expect(r.promptLogits!.length).toBe(TINY.vocab);
  });

  test('cancel mid-generation finishes promptly with "aborted"', async () => {
    let gen: ReturnType<EngineModel['generate']> | undefined;
    let count = 0;
    let cancelledAt = 0;
    gen = model.generate(request([textSeq([1, 2, 3]), textSeq([4])], 9000, { returnPromptLogits: false }), {
      onToken: () => {
        count++;
        if (count === 40) {
          cancelledAt = Date.now();
          gen!.cancel();
        }
      },
    });
    const results = await gen.promise;
    expect(Date.now() - cancelledAt).toBeLessThan(2000);
    for (const r of results) {
      expect(r.finishReason).toBe('aborted');
      expect(r.tokenIds.length).toBeLessThan(9000);
    }
  });

  test('an AbortSignal cancels too', async () => {
    const ac = new AbortController();
    ac.abort();
    const [r] = await model.generate(request([textSeq([1])], 100), { signal: ac.signal }).promise;
    expect(r.finishReason).toBe('aborted');
  });

  test('a throwing onToken callback rejects the generation', async () => {
    const gen = model.generate(request([textSeq([1, 2])], 100), {
      onToken: () => {
        throw new Error('boom from callback');
      },
    });
    await expect(gen.promise).rejects.toThrow('boom from callback');
  });

  test('a request that does not fit the KV cache fails with the numbers', async () => {
    const small = await load('llama', {}, 32);
    try {
      expect(small.info().kvBlocks).toBe(2);
      await expect(small.generate(request([textSeq(Array(20).fill(3))], 20)).promise).rejects.toMatchObject({
        code: 'ERR_OOM',
        message:
          'KV cache too small for this request: 1 sequence(s) with 20 prompt tokens and up to 20 new tokens each need 3 blocks of 16 tokens, but 2 of 2 blocks are free (capacity 32 tokens; raise kvCacheTokens or lower maxNewTokens)',
      });
      // blocks come back after each request: the same budget serves request after request
      for (let i = 0; i < 3; i++) {
        const [r] = await small.generate(request([textSeq([1, 2, 3]), textSeq([4, 5])], 10)).promise;
        expect(r.tokenIds.length).toBe(10);
      }
    } finally {
      small.dispose();
    }
  });
});

describe('concurrency and threads', () => {
  test('concurrent generate / encode calls on one model are each correct', async () => {
    const model = await load('phi3');
    try {
      const a = textSeq([1, 2, 3, 4]);
      const b = imageSeq([7], 1, [8, 9]);
      const [refA] = await model.generate(request([a], 10)).promise;
      const [refB] = await model.generate(request([b], 10)).promise;
      const refEmb = await model.encodeImages(tinyPixels(2), 2);
      const jobs = await Promise.all([
        model.generate(request([a], 10)).promise,
        model.encodeImages(tinyPixels(2), 2),
        model.generate(request([b], 10)).promise,
        model.generate(request([b, a], 10)).promise,
      ]);
      expect(Array.from((jobs[0] as NativeSequenceResult[])[0].tokenIds)).toEqual(Array.from(refA.tokenIds));
      expect(Array.from(jobs[1] as Float32Array)).toEqual(Array.from(refEmb));
      expect(Array.from((jobs[2] as NativeSequenceResult[])[0].tokenIds)).toEqual(Array.from(refB.tokenIds));
      const both = jobs[3] as NativeSequenceResult[];
      expect(Array.from(both[0].tokenIds)).toEqual(Array.from(refB.tokenIds));
      expect(Array.from(both[1].tokenIds)).toEqual(Array.from(refA.tokenIds));
    } finally {
      model.dispose();
    }
  });

  test('results do not depend on the number of threads (bit for bit)', async () => {
    const dir = writeTinyModel(join(root, 'threads'), { family: 'internlm2' });
    const seqs = [imageSeq([1, 2], 2, [3]), textSeq([4, 5, 6, 7, 8])];
    const runs: NativeSequenceResult[][] = [];
    for (const threads of [1, 3]) {
      const m = await EngineModel.load(dir, { imageContextTokenId: TINY.imageContextId, threads });
      try {
        expect(m.info().backendDetail).toContain(`${threads} thread`);
        runs.push(await m.generate(request(seqs, 8)).promise);
      } finally {
        m.dispose();
      }
    }
    for (let i = 0; i < seqs.length; i++) {
      expect(Array.from(runs[1][i].promptLogits!)).toEqual(Array.from(runs[0][i].promptLogits!));
      expect(Array.from(runs[1][i].tokenIds)).toEqual(Array.from(runs[0][i].tokenIds));
    }
  });
});

describe('dispose', () => {
  test('dispose during a generation cancels it and waits; later calls throw ERR_DISPOSED', async () => {
    const model = await load('internlm2', {}, 20000);
    let tokens = 0;
    let resolveStarted: () => void;
    const started = new Promise<void>((r) => (resolveStarted = r));
    const gen = model.generate(request([textSeq([1, 2, 3])], 15000, { returnPromptLogits: false }), {
      onToken: () => {
        if (++tokens === 5) resolveStarted();
      },
    });
    await started;
    model.dispose();
    const results: NativeSequenceResult[] = await gen.promise;
    expect(results[0].finishReason).toBe('aborted');
    expect(() => model.info()).toThrow(InternVLError);
    expect(() => model.info()).toThrow('the model has been disposed');
    expect(() => model.generate(request([textSeq([1])]))).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
    await expect(model.encodeImages(tinyPixels(1), 1)).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    model.dispose(); // twice is fine
  });

  test('dispose while an encode is in flight is safe', async () => {
    const model = await load('llama');
    const p = model.encodeImages(tinyPixels(4), 4);
    model.dispose();
    const out = await p;
    expect(out.length).toBe(4 * TINY.numImageToken * TINY.hidden);
  });
});
