/**
 * Abort at every stage frees everything (#11): a request cancelled while its images
 * are preprocessed (JS), while the ViT encodes its tiles, during the prefill of a long
 * prompt, while decoding, and while queued for KV blocks ends promptly with no tokens
 * after the cancel, gives every KV block back (stats: free == total, nothing running
 * or queued), and leaves the model producing exactly what it produced before.
 *
 * The engine checks a request's cancel flag between ViT and decoder layers; to land a
 * cancel inside a stage the ViT and prefill stages use a dummy-weights model whose
 * stages take about a second on this machine (24 ViT and 24 decoder layers). A cancel at
 * a quarter of a stage must finish well before the rest of that stage could have run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { InternVL } from '../../lib/model.js';
import type { NativeGenerateRequest } from '../../lib/nativeTypes.js';
import { fixturesDir } from '../helpers/goldens.js';
import { GREEDY, expectAllFree } from '../helpers/faultHooks.js';

const IMG_CONTEXT = 500;
const TILE = 224;

/** A Qwen2 + InternViT-300M-style config with 24 + 24 layers of width 256 (random weights). */
function slowConfig(): Record<string, unknown> {
  return {
    architectures: ['InternVLChatModel'],
    model_type: 'internvl_chat',
    template: 'Hermes-2',
    downsample_ratio: 0.5,
    force_image_size: TILE,
    ps_version: 'v2',
    select_layer: -1,
    vision_config: {
      hidden_size: 256,
      intermediate_size: 1024,
      num_attention_heads: 4,
      num_hidden_layers: 24,
      image_size: TILE,
      patch_size: 14,
      norm_type: 'layer_norm',
      qkv_bias: true,
      qk_normalization: false,
    },
    llm_config: {
      architectures: ['Qwen2ForCausalLM'],
      hidden_size: 256,
      intermediate_size: 768,
      num_hidden_layers: 24,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      vocab_size: 512,
      max_position_embeddings: 8192,
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const textIds = (n: number) => Int32Array.from({ length: n }, (_, i) => 1 + ((i * 7) % 400));

describe('engine stages (dummy weights, about a second per stage)', () => {
  let dir: string;
  let model: EngineModel;
  let numImageToken: number;
  const tiles = 2;
  let pixels: Float32Array;
  let imageIds: Int32Array;
  let reference: number[];

  const req = (ids: Int32Array, maxNewTokens: number, withImages: boolean): NativeGenerateRequest => ({
    sequences: [withImages ? { inputIds: ids, pixelValues: pixels, tiles } : { inputIds: ids }],
    maxNewTokens,
    eosTokenIds: [],
    sampling: GREEDY,
  });

  /** Runs a request, cancels it after `afterMs`, returns the tokens seen and the cancel → settle latency. */
  async function cancelAfter(r: NativeGenerateRequest, afterMs: number) {
    let tokens = 0;
    let tokensAfterCancel = 0;
    let cancelled = false;
    const gen = model.generate(r, {
      onToken: () => {
        tokens++;
        if (cancelled) tokensAfterCancel++;
      },
    });
    await sleep(afterMs);
    const t0 = performance.now();
    cancelled = true;
    gen.cancel();
    const [res] = await gen.promise;
    return { res, tokens, tokensAfterCancel, latency: performance.now() - t0 };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ivl-stages-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(slowConfig()));
    model = await EngineModel.load(dir, { imageContextTokenId: IMG_CONTEXT, dummyWeights: true, threads: 2, kvCacheTokens: 4096, prefixCache: false });
    numImageToken = model.info().numImageToken;
    pixels = new Float32Array(tiles * 3 * TILE * TILE).map((_, i) => Math.sin(i) * 0.5);
    imageIds = Int32Array.from([1, 2, ...Array(tiles * numImageToken).fill(IMG_CONTEXT), 3, 4]);
    const [r] = await model.generate(req(imageIds, 8, true)).promise;
    reference = Array.from(r.tokenIds);
    expect(reference).toHaveLength(8);
  });
  afterAll(() => {
    model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('during the ViT: no token, settles before the ViT could finish, blocks back', async () => {
    const t0 = performance.now();
    await model.encodeImages(pixels, tiles);
    const vitMs = performance.now() - t0;
    expect(vitMs).toBeGreaterThan(200); // else the stage is too short to land a cancel in
    const { res, tokens, latency } = await cancelAfter(req(imageIds, 8, true), vitMs / 4);
    expect(res.finishReason).toBe('aborted');
    expect(tokens).toBe(0);
    expect(res.tokenIds).toHaveLength(0);
    expect(latency).toBeLessThan(vitMs / 2); // the remaining three quarters of the ViT did not run
    expectAllFree(model.stats());
  });

  test('during the prefill: no token, settles before the prefill could finish, blocks back', async () => {
    const ids = textIds(800);
    const t0 = performance.now();
    await model.generate(req(ids, 1, false)).promise;
    const prefillMs = performance.now() - t0;
    expect(prefillMs).toBeGreaterThan(200);
    const { res, tokens, latency } = await cancelAfter(req(ids, 8, false), prefillMs / 4);
    expect(res.finishReason).toBe('aborted');
    expect(tokens).toBe(0);
    expect(latency).toBeLessThan(prefillMs / 2);
    expectAllFree(model.stats());
  });

  test('two requests sharing one ViT pass: cancelling one mid-ViT leaves the other exactly as alone', async () => {
    // A blocker keeps the engine busy so that A and B queue, are admitted together and
    // their tiles go through the ViT as one batch.
    const steps = model.stats().prefillSteps; // before anything is submitted: no race with the engine
    const started = async (n: number) => {
      const until = Date.now() + 30_000; // the counter moves when a step starts
      while (model.stats().prefillSteps < n && Date.now() < until) await new Promise((r) => setImmediate(r));
    };
    const blocker = model.generate(req(textIds(600), 64, false));
    await started(steps + 1); // the engine is busy with the blocker: A and B queue behind it
    let aTokens = 0;
    const a = model.generate(req(imageIds, 8, true), { onToken: () => aTokens++ });
    const b = model.generate(req(imageIds, 8, true));
    expect(model.stats().queuedRequests + model.stats().runningRequests).toBeGreaterThanOrEqual(2);
    // Cancel as soon as A and B's shared step has begun: a fixed sleep let the whole step
    // finish first on a loaded machine, and A then had its first token.
    await started(steps + 2);
    a.cancel();
    expect(model.stats().prefillSteps).toBe(steps + 2); // A and B are in one prefill step
    const [[ra], [rb]] = await Promise.all([a.promise, b.promise]);
    await blocker.promise;
    expect(ra.finishReason).toBe('aborted');
    expect(aTokens).toBe(0);
    expect(rb.finishReason).toBe('length');
    expect(Array.from(rb.tokenIds)).toEqual(reference);
    expectAllFree(model.stats());
  });

  test('while decoding: no token after the cancel, blocks back', async () => {
    let gen: ReturnType<EngineModel['generate']>;
    let n = 0;
    let after = 0;
    let cancelled = false;
    gen = model.generate(req(textIds(5), 3000, false), {
      onToken: () => {
        if (cancelled) after++;
        if (++n === 5) {
          cancelled = true;
          gen.cancel();
        }
      },
    });
    const [res] = await gen.promise;
    expect(res.finishReason).toBe('aborted');
    expect(res.tokenIds).toHaveLength(5);
    expect(after).toBe(0);
    expectAllFree(model.stats());
  });

  test('while queued for KV blocks: aborted with no token, the running request unaffected', async () => {
    const total = model.stats().kvBlocks;
    // the first request reserves all but a few blocks; the second waits behind it
    const big = model.generate(req(textIds(16), (total - 2) * 16 - 16, false));
    let queuedTokens = 0;
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (model.stats().runningRequests === 1) {
          clearInterval(poll);
          resolve();
        }
      }, 5);
    });
    const queued = model.generate(req(textIds(100), 100, false), { onToken: () => queuedTokens++ });
    await sleep(50);
    expect(model.stats().queuedRequests).toBe(1);
    queued.cancel();
    const [q] = await queued.promise;
    expect(q.finishReason).toBe('aborted');
    expect(q.tokenIds).toHaveLength(0);
    expect(queuedTokens).toBe(0);
    big.cancel();
    const [b] = await big.promise;
    expect(b.finishReason).toBe('aborted');
    expectAllFree(model.stats());
  });

  test('after all the aborts the model still produces the reference tokens', async () => {
    const [r] = await model.generate(req(imageIds, 8, true)).promise;
    expect(Array.from(r.tokenIds)).toEqual(reference);
    expectAllFree(model.stats());
  });
});

describe('preprocessing (public API, tiny fixture)', () => {
  let model: InternVL;
  let big: Buffer;

  beforeAll(async () => {
    model = await InternVL.load(join(fixturesDir, 'models', 'tiny-internlm2'), { backend: 'cpu' });
    // a noisy 3000×2000 JPEG: decoding takes tens of milliseconds
    const noise = Buffer.alloc(3000 * 2000 * 3);
    for (let i = 0, x = 1; i < noise.length; i++) noise[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    big = await sharp(noise, { raw: { width: 3000, height: 2000, channels: 3 } }).jpeg({ quality: 95 }).toBuffer();
  });
  afterAll(() => model?.dispose());

  test('an abort while the image decodes rejects with the reason; the engine never sees the request', async () => {
    const engine = (model as unknown as { engine: EngineModel }).engine;
    const before = engine.stats();
    const ac = new AbortController();
    const reason = new Error('stop during preprocessing');
    const p = model.chat({ question: 'Describe.', images: [big, big], signal: ac.signal });
    await sleep(5);
    ac.abort(reason);
    await expect(p).rejects.toBe(reason);
    const after = engine.stats();
    expect(after.completedRequests).toBe(before.completedRequests); // nothing was submitted
    expect(after.decodeSteps).toBe(before.decodeSteps);
    expectAllFree(after);
    // and the model is fine
    const r = await model.chat({ question: 'Hello', generation: { maxNewTokens: 4 } });
    expect(r.tokenIds.length).toBeGreaterThan(0);
    expectAllFree(engine.stats());
  });
});
