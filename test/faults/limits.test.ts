/**
 * Limits with clear errors (#11): absurd generation options are ERR_INVALID_ARG naming
 * the option at every entry point (chat, stream, batchChat, the engine's generate, the
 * HTTP server's 400s); too many images or tiles is ERR_CONTEXT_OVERFLOW with the numbers,
 * and a count of images that cannot fit is refused before any of them is decoded.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { InternVL } from '../../lib/model.js';
import type { NativeGenerateRequest } from '../../lib/nativeTypes.js';
import { type RunningServer, serve } from '../../lib/server/server.js';
import { fixturesDir } from '../helpers/goldens.js';

// tiny-yi: context 4096, 16 image tokens per 112-pixel tile
const dir = join(fixturesDir, 'models', 'tiny-yi');
const wide = readFileSync(join(fixturesDir, 'images', 'wide.jpg'));
let model: InternVL;

beforeAll(async () => {
  model = await InternVL.load(dir, { backend: 'cpu', threads: 1 });
});
afterAll(() => model?.dispose());

const BAD_GENERATION: Array<[string, unknown, string]> = [
  ['maxNewTokens', -1, 'integer between 1 and 1048576'],
  ['maxNewTokens', NaN, 'integer between 1 and 1048576'],
  ['maxNewTokens', Infinity, 'integer between 1 and 1048576'],
  ['maxNewTokens', 2 ** 40, 'integer between 1 and 1048576'],
  ['maxNewTokens', 2.5, 'integer between 1 and 1048576'],
  ['maxNewTokens', '16', 'integer between 1 and 1048576'],
  ['temperature', NaN, 'number greater than 0 and at most 100'],
  ['temperature', -1, 'number greater than 0 and at most 100'],
  ['temperature', Infinity, 'number greater than 0 and at most 100'],
  ['topP', 1.5, 'number greater than 0 and at most 1'],
  ['topP', NaN, 'number greater than 0 and at most 1'],
  ['topP', 0, 'number greater than 0 and at most 1'],
  ['topK', -1, 'integer between 0 and 1048576'],
  ['topK', 0.5, 'integer between 0 and 1048576'],
  ['repetitionPenalty', 0, 'number greater than 0 and at most 100'],
  ['repetitionPenalty', NaN, 'number greater than 0 and at most 100'],
  ['seed', -1, 'integer between 0 and 9007199254740991'],
  ['seed', 2 ** 64, 'integer between 0 and 9007199254740991'],
  ['doSample', 'yes', 'boolean'],
  ['stop', 'END', 'array of non-empty strings'],
  ['stop', [''], 'array of non-empty strings'],
  ['stop', [42], 'array of non-empty strings'],
];

describe('absurd generation options → ERR_INVALID_ARG naming the option', () => {
  test.each(BAD_GENERATION)('generation.%s = %p', async (key, value, expected) => {
    const generation = { [key]: value } as never;
    const match = { code: 'ERR_INVALID_ARG', message: expect.stringContaining(`Expected ${expected} for generation.${key}`) };
    await expect(model.chat({ question: 'x', generation })).rejects.toMatchObject(match);
    await expect(model.batchChat({ questions: ['x', 'y'], generation })).rejects.toMatchObject(match);
    const stream = model.stream({ question: 'x', generation });
    await expect(stream.next()).rejects.toMatchObject(match);
    await expect(stream.result).rejects.toMatchObject(match);
  });

  test('at the engine: non-finite and out-of-range sampling numbers are refused synchronously', () => {
    const engine = (model as unknown as { engine: EngineModel }).engine;
    const base = (): NativeGenerateRequest => ({
      sequences: [{ inputIds: Int32Array.from([1, 2, 3]) }],
      maxNewTokens: 4,
      eosTokenIds: [],
      sampling: { doSample: true, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
    });
    const edits: Array<[string, (r: NativeGenerateRequest) => void]> = [
      ['request.maxNewTokens', (r) => (r.maxNewTokens = NaN)],
      ['request.maxNewTokens', (r) => (r.maxNewTokens = -1)],
      ['request.sampling.temperature', (r) => (r.sampling.temperature = NaN)],
      ['sampling.temperature', (r) => (r.sampling.temperature = 0)],
      ['request.sampling.topP', (r) => (r.sampling.topP = Infinity)],
      ['sampling.topP', (r) => (r.sampling.topP = 2)],
      ['request.sampling.topK', (r) => (r.sampling.topK = -1)],
      ['request.sampling.repetitionPenalty', (r) => (r.sampling.repetitionPenalty = NaN)],
      ['request.sampling.seed', (r) => (r.sampling.seed = -1)],
      ['request.eosTokenIds[0]', (r) => (r.eosTokenIds = [1e10])],
      ['request.sequences[0].tiles', (r) => (r.sequences = [{ inputIds: Int32Array.from([1]), pixelValues: new Float32Array(3), tiles: -1 }])],
      ['inputIds is empty', (r) => (r.sequences = [{ inputIds: new Int32Array(0) }])],
      ['at least one sequence', (r) => (r.sequences = [])],
    ];
    for (const [name, edit] of edits) {
      const r = base();
      edit(r);
      expect(() => engine.generate(r)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG', message: expect.stringContaining(name) }));
    }
    const st = engine.stats();
    expect(st.kvFreeBlocks).toBe(st.kvBlocks);
  });

  test('at the engine: 2^40 new tokens is refused at once as larger than the KV cache', async () => {
    const engine = (model as unknown as { engine: EngineModel }).engine;
    const gen = engine.generate({
      sequences: [{ inputIds: Int32Array.from([1, 2, 3]) }],
      maxNewTokens: 2 ** 40,
      eosTokenIds: [],
      sampling: { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
    });
    await expect(gen.promise).rejects.toMatchObject({ code: 'ERR_OOM', message: expect.stringContaining('up to 1099511627776 new tokens') });
  });

  describe('over HTTP', () => {
    let running: RunningServer;
    beforeAll(async () => {
      running = await serve(model, { port: 0 });
    });
    afterAll(async () => {
      await running?.close(1000);
    });

    test.each([
      [{ max_tokens: -5 }, 'generation.maxNewTokens'],
      [{ max_tokens: 1e12 }, 'generation.maxNewTokens'],
      [{ max_completion_tokens: 'many' }, 'generation.maxNewTokens'],
      [{ temperature: -1 }, 'generation.temperature'],
      [{ temperature: 1e9 }, 'generation.temperature'],
      [{ top_p: 3 }, 'generation.topP'],
      [{ seed: -7 }, 'generation.seed'],
      [{ stop: [null] }, 'generation.stop'],
      [{ n: 17 }, 'n must be an integer from 1 to 16'],
    ])('%j → 400 naming it', async (extra, message) => {
      const res = await fetch(`${running.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], ...extra }),
      });
      expect(res.status).toBe(400);
      const j = (await res.json()) as { error: { message: string } };
      expect(j.error.message).toContain(message);
    });
  });
});

describe('too many images or tiles → ERR_CONTEXT_OVERFLOW with the numbers', () => {
  test('more images than the context could hold at one tile each: refused before decoding any', async () => {
    const images = Array(300).fill(Buffer.from('not an image at all')); // never decoded: that would be ERR_IMAGE
    const t0 = performance.now();
    await expect(model.chat({ question: 'x', images })).rejects.toMatchObject({
      code: 'ERR_CONTEXT_OVERFLOW',
      message: '300 images need at least 4800 image tokens (16 per tile, one tile each) but the context holds 4096',
    });
    expect(performance.now() - t0).toBeLessThan(500);
  });

  test('images whose tiles overflow the context: refused with the tile and context sizes, before the engine', async () => {
    const engine = (model as unknown as { engine: EngineModel }).engine;
    const before = engine.stats().completedRequests;
    await expect(model.chat({ question: 'x', images: Array(100).fill(wide) })).rejects.toMatchObject({
      code: 'ERR_CONTEXT_OVERFLOW',
      message: expect.stringMatching(/^100 image\(s\) make \d+ tiles = \d+ image tokens \(16 per tile\) but the context holds 4096/),
    });
    expect(engine.stats().completedRequests).toBe(before);
  });

  test('the tiles are counted from the headers before anything is decoded', async () => {
    // truncated JPEGs: valid headers, bodies that would fail to decode (ERR_IMAGE)
    const cut = wide.subarray(0, Math.floor(wide.length / 2));
    await expect(model.chat({ question: 'x', images: Array(100).fill(cut) })).rejects.toMatchObject({ code: 'ERR_CONTEXT_OVERFLOW' });
    await expect(model.chat({ question: 'x', images: [cut] })).rejects.toMatchObject({ code: 'ERR_IMAGE' });
    // batchChat counts per question too
    await expect(model.batchChat({ questions: ['a'], images: [wide], imageOptions: { maxTiles: 12 } })).resolves.toBeDefined();
  });

  test.each([NaN, Infinity, -Infinity])('pixelValues containing %s are ERR_INVALID_ARG naming the index', async (bad) => {
    const pixelValues = new Float32Array(3 * 112 * 112);
    pixelValues[1234] = bad;
    await expect(model.chat({ question: 'x', pixelValues })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
      message: `pixelValues[1234] is ${bad}: pixel values must be finite numbers`,
    });
  });

  test('pixelValues with more tiles than the context holds', async () => {
    const tiles = 300;
    const pixelValues = new Float32Array(tiles * 3 * 112 * 112);
    await expect(model.chat({ question: 'x', pixelValues })).rejects.toMatchObject({
      code: 'ERR_CONTEXT_OVERFLOW',
      message: expect.stringMatching(/^The prompt has 48\d\d tokens but the context holds 4096$/),
    });
  });

  test('a tile budget beyond the tiling limit is ERR_INVALID_ARG', async () => {
    await expect(model.chat({ question: 'x', images: [wide], imageOptions: { maxTiles: 1000 } })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
      message: expect.stringContaining('maxTiles'),
    });
  });
});
