/**
 * Abort, history and argument checks of the public API (CPU backend, tiny fixture).
 */
import { join } from 'node:path';
import { InternVL } from '../../lib/model.js';
import { type GoldenCase, fixturesDir, readModelGolden } from '../helpers/goldens.js';

const golden = readModelGolden('tiny-internlm2');
const imageCase = golden.cases.find((x) => x.name === 'image') as GoldenCase;
const twoTurn = golden.cases.find((x) => x.name === 'two_turn') as GoldenCase;
const wide = join(fixturesDir, golden.images.wide.file);
let model: InternVL;

beforeAll(async () => {
  model = await InternVL.load(join(fixturesDir, golden.model_dir), { backend: 'cpu' });
});
afterAll(() => model?.dispose());

test('history from one chat feeds the next: turn two equals the two-turn golden', async () => {
  const first = await model.chat({ question: imageCase.question as string, images: [wide], generation: { maxNewTokens: 24 } });
  expect(first.response).toBe(imageCase.response);
  expect(first.history).toEqual([{ question: `<image>\n${imageCase.question}`, answer: imageCase.response }]);
  const second = await model.chat({ question: twoTurn.question as string, images: [wide], history: first.history, generation: { maxNewTokens: 24 } });
  expect(second.tokenIds).toEqual(twoTurn.generated_ids);
  expect(second.history).toHaveLength(2);
});

test('an abort during generation rejects with the signal reason and the model stays usable', async () => {
  const ac = new AbortController();
  const reason = new Error('user pressed stop');
  let seen = 0;
  const p = model.chat({
    question: 'Hello',
    generation: { maxNewTokens: 2000, doSample: true, seed: 1 },
    signal: ac.signal,
    onToken: () => {
      if (++seen === 3) ac.abort(reason);
    },
  });
  await expect(p).rejects.toBe(reason);
  expect(seen).toBeLessThan(50);
  const again = await model.chat({ question: imageCase.question as string, images: [wide], generation: { maxNewTokens: 24 } });
  expect(again.tokenIds).toEqual(imageCase.generated_ids);
});

test('partialOnAbort resolves with the text so far and finishReason aborted', async () => {
  const ac = new AbortController();
  let n = 0;
  const r = await model.chat({
    question: 'Hello',
    generation: { maxNewTokens: 2000, doSample: true, seed: 2 },
    signal: ac.signal,
    partialOnAbort: true,
    onToken: () => {
      if (++n === 5) ac.abort();
    },
  });
  expect(r.finishReason).toBe('aborted');
  expect(r.tokenIds.length).toBeGreaterThanOrEqual(4);
  expect(r.tokenIds.length).toBeLessThan(50);
});

test('a stop string ends generation and is cut from the response, streamed or not', async () => {
  const full = imageCase.response as string;
  const stop = full.slice(6, 9);
  const cut = full.slice(0, full.indexOf(stop)).trim();
  const r = await model.chat({ question: imageCase.question as string, images: [wide], generation: { maxNewTokens: 24, stop: [stop] } });
  expect(r.response).toBe(cut);
  expect(r.finishReason).toBe('stop');
  expect(r.tokenIds.length).toBeLessThan(24);
  let streamed = '';
  for await (const t of model.stream({ question: imageCase.question as string, images: [wide], generation: { maxNewTokens: 24, stop: [stop] } })) streamed += t;
  expect(streamed).toBe(cut);
});

test('an already-aborted signal rejects before any work', async () => {
  await expect(model.chat({ question: 'x', signal: AbortSignal.abort(new Error('early')) })).rejects.toThrow('early');
});

test('breaking out of a stream cancels generation', async () => {
  const it = model.stream({ question: 'Hello', generation: { maxNewTokens: 2000, doSample: true, seed: 3 } });
  let chunks = 0;
  for await (const _ of it) {
    if (++chunks === 2) break;
  }
  await expect(it.result).rejects.toMatchObject({ code: 'ERR_ABORTED' });
});

test('same seed, same sampled tokens; another seed differs', async () => {
  const run = (seed: number) => model.chat({ question: 'Hello', generation: { maxNewTokens: 16, doSample: true, temperature: 1.5, seed } });
  const [a, b, c] = [await run(7), await run(7), await run(8)];
  expect(a.tokenIds).toEqual(b.tokenIds);
  expect(a.tokenIds).not.toEqual(c.tokenIds);
});

test.each([
  [{ question: 42 }, 'Expected string for question but received 42 of type number'],
  [{ question: 'x', generation: { topP: 0 } }, 'Expected number greater than 0 and at most 1 for generation.topP'],
  [{ question: 'x', history: [['only one']] }, 'for history[0]'],
  [{ question: 'x', pixelValues: new Float32Array(5) }, 'for pixelValues'],
  [{ question: 'x', images: [wide], numPatchesList: [2, 3] }, 'numPatchesList sums to 5 tiles but 4 tiles were given'],
])('bad request %# → ERR_INVALID_ARG naming it', async (req, message) => {
  await expect(model.chat(req as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining(message) });
});

test('a prompt longer than the context is ERR_CONTEXT_OVERFLOW with both numbers', async () => {
  const long = 'word '.repeat(model.info.contextLength);
  await expect(model.chat({ question: long })).rejects.toMatchObject({
    code: 'ERR_CONTEXT_OVERFLOW',
    message: expect.stringMatching(/The prompt has \d+ tokens but the context holds \d+/),
  });
});

test('generation longer than the KV cache holds ends with finishReason length, not an error', async () => {
  const small = await InternVL.load(join(fixturesDir, golden.model_dir), { backend: 'cpu', kvCacheTokens: 128 });
  try {
    const r = await small.chat({ question: 'Hello', generation: { maxNewTokens: 100_000, doSample: true, seed: 4 } });
    expect(r.finishReason).toBe('length');
    expect(r.usage.totalTokens).toBeLessThanOrEqual(128);
    expect(r.usage.completionTokens).toBeGreaterThan(50);
  } finally {
    small.dispose();
  }
});

test('dispose: later calls reject with ERR_DISPOSED', async () => {
  const m = await InternVL.load(join(fixturesDir, golden.model_dir), { backend: 'cpu' });
  m.dispose();
  await expect(m.chat({ question: 'x' })).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
});
