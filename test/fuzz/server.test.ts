/**
 * Property-based fuzzing of the OpenAI-compatible server's request handling
 * (lib/server): mutated chat.completions bodies.
 *
 * - mapChatCompletion + the generation options: a mapped request or a 400 HttpError /
 *   InternVLError ERR_INVALID_ARG, nothing else; local image paths never read a file
 *   outside the allowed directory (a sentinel file beside it is never returned).
 * - Over HTTP against the tiny Qwen2 fixture: every answer is 200 (JSON or a complete
 *   SSE stream) or a 4xx with an OpenAI error body — never a 5xx, never a hang — and
 *   afterwards the server is healthy and every KV block is free again.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { EngineModel } from '../../lib/engine/nativeModel.js';
import { InternVLError } from '../../lib/errors.js';
import { resolveGeneration } from '../../lib/generation.js';
import { InternVL } from '../../lib/model.js';
import { HttpError } from '../../lib/server/httpErrors.js';
import { mapChatCompletion } from '../../lib/server/openaiMessages.js';
import { type RunningServer, serve } from '../../lib/server/server.js';
import { fixturesDir } from '../helpers/goldens.js';
import { type Json, type Rng, fuzzLoop, fuzzSeed, iterations, jsonKeys, mutateBytes, mutateJson } from './mutate.js';

let root: string;
let allowed: string;
let secret: Buffer;
let bodies: Json[] = [];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fuzz-server-'));
  allowed = join(root, 'images');
  mkdirSync(allowed);
  const wide = readFileSync(join(fixturesDir, 'images', 'wide.jpg'));
  const small = await sharp(wide).resize(32, 24).jpeg().toBuffer();
  writeFileSync(join(allowed, 'cat.jpg'), small);
  secret = await sharp(wide).resize(20, 20).png().toBuffer(); // outside the allowed directory
  writeFileSync(join(root, 'secret.png'), secret);
  const dataUrl = `data:image/jpeg;base64,${small.toString('base64')}`;
  bodies = [
    { model: 'm', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, temperature: 0 },
    {
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl } }, { type: 'text', text: 'What is it?' }] },
        { role: 'assistant', content: 'A cat.' },
        { role: 'user', content: 'And the colour?' },
      ],
      max_tokens: 3,
      temperature: 0.7,
      top_p: 0.9,
      seed: 5,
      stop: ['\n'],
    },
    {
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Look: ' }, { type: 'image_url', image_url: 'cat.jpg' }, { type: 'image_url', image_url: { url: `file://${join(allowed, 'cat.jpg')}` } }] }],
      max_completion_tokens: 2,
      stream: true,
      stream_options: { include_usage: true },
    },
    { messages: [{ role: 'developer', content: 'x' }, { role: 'user', content: null }], n: 1, stop: 'a', max_tokens: 2 },
  ];
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const keys = () => [...jsonKeys(bodies as Json), 'image_url', 'url', '../secret.png', 'secret.png', join('..', 'secret.png')];

/** A mutated body; some image URLs are pointed at the file outside the allowed directory. */
function mutatedBody(rng: Rng): Json {
  const b = mutateJson(rng, rng.pick(bodies), keys());
  if (rng.chance(0.15)) {
    const text = JSON.stringify(b).replace(/cat\.jpg/g, rng.pick(['../secret.png', `${allowed}/../secret.png`, join(root, 'secret.png'), 'images/../../secret.png', '%2e%2e/secret.png']));
    return JSON.parse(text) as Json;
  }
  return b;
}

/** Output lengths kept small so each accepted request finishes in milliseconds. */
function clampTokens(b: Json): Json {
  if (b && typeof b === 'object' && !Array.isArray(b)) {
    for (const k of ['max_tokens', 'max_completion_tokens']) {
      const v = b[k];
      if (typeof v === 'number' && Number.isInteger(v) && v > 8) b[k] = 8;
    }
    if (b.max_tokens === undefined && b.max_completion_tokens === undefined) b.max_tokens = 4;
  }
  return b;
}

test('mapChatCompletion: a mapped request or a 400, and no file outside the allowed directory', async () => {
  const outcomes = { mapped: 0, refused: 0 };
  await fuzzLoop('openai-mapping', fuzzSeed(41), iterations(3000), async (rng, _i, record) => {
    const body = mutatedBody(rng);
    record(body);
    try {
      const m = await mapChatCompletion(body, { localFilesRoot: allowed, maxImageBytes: 1 << 20 });
      for (const img of m.chat.images ?? []) {
        if (Buffer.isBuffer(img) && img.equals(secret)) throw new Error('a file outside the allowed directory was read');
      }
      if (typeof m.chat.question !== 'string') throw new Error('question is not a string');
      resolveGeneration(m.chat.generation);
      outcomes.mapped++;
    } catch (e) {
      if (e instanceof HttpError) {
        if (e.status !== 400 || !e.message) throw new Error(`HttpError ${e.status} ${e.message}`);
      } else if (!(e instanceof InternVLError && e.code === 'ERR_INVALID_ARG')) {
        throw e;
      }
      outcomes.refused++;
    }
  });
  expect(outcomes.mapped).toBeGreaterThan(100);
  expect(outcomes.refused).toBeGreaterThan(100);
});

describe('over HTTP', () => {
  let model: InternVL;
  let running: RunningServer;

  beforeAll(async () => {
    model = await InternVL.load(join(fixturesDir, 'models', 'tiny-qwen2'), { backend: 'cpu', threads: 1 });
    running = await serve(model, { port: 0, allowLocalFiles: allowed, maxBodyBytes: 64 << 10, maxQueue: 8 });
  });
  afterAll(async () => {
    await running?.close(1000);
    model?.dispose();
  });

  test('every mutated request gets 200 or a 4xx with an OpenAI error, never a 5xx', async () => {
    const statuses = new Map<number, number>();
    await fuzzLoop('openai-http', fuzzSeed(42), iterations(150), async (rng, _i, record) => {
      let payload: string | Uint8Array;
      if (rng.chance(0.75)) {
        payload = JSON.stringify(clampTokens(mutatedBody(rng)));
      } else {
        const bytes = mutateBytes(rng, Buffer.from(JSON.stringify(rng.pick(bodies))));
        let parsed: Json | undefined;
        try {
          parsed = JSON.parse(Buffer.from(bytes).toString('utf8')) as Json;
        } catch {
          parsed = undefined;
        }
        payload = parsed === undefined ? bytes : JSON.stringify(clampTokens(parsed)); // invalid JSON goes as is
      }
      record(typeof payload === 'string' ? payload : Buffer.from(payload).toString('latin1'));
      const res = await fetch(`${running.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: payload,
        signal: AbortSignal.timeout(20_000),
      });
      const text = await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 200) {
        if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
          if (!text.trimEnd().endsWith('data: [DONE]') && !text.includes('"error"')) throw new Error(`SSE stream ended early: ${text.slice(-200)}`);
        } else {
          const j = JSON.parse(text) as { choices: Array<{ message: { content: string } }> };
          if (typeof j.choices?.[0]?.message?.content !== 'string') throw new Error(`200 without a message: ${text.slice(0, 200)}`);
        }
        return;
      }
      if (res.status < 400 || res.status >= 500) throw new Error(`status ${res.status}: ${text.slice(0, 300)}`);
      const j = JSON.parse(text) as { error: { message: string; type: string } };
      if (typeof j.error?.message !== 'string' || j.error.message.length === 0) throw new Error(`error body without a message: ${text}`);
      if (j.error.message.includes(root) && j.error.message.includes('secret')) throw new Error(`an error echoes a path outside: ${j.error.message}`);
    });
    expect(statuses.get(200) ?? 0).toBeGreaterThan(10);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(10);
    const health = (await (await fetch(`${running.url}/health`)).json()) as { status: string; inflight: number };
    expect(health).toEqual({ status: 'ok', inflight: 0 });
    const engine = (model as unknown as { engine: EngineModel }).engine;
    const st = engine.stats();
    expect(st.kvFreeBlocks).toBe(st.kvBlocks);
    expect(st.runningRequests + st.queuedRequests).toBe(0);
  });
});

test('found by this fuzzer: an image path naming a directory is a 400, not a 500 (EISDIR)', async () => {
  const body = (url: string) => ({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }] });
  for (const url of ['.', allowed, `file://${allowed}/`]) {
    await expect(mapChatCompletion(body(url), { localFilesRoot: allowed, maxImageBytes: 1 << 20 })).rejects.toMatchObject({
      status: 400,
      message: 'image path is not a regular file',
    });
  }
  await expect(mapChatCompletion(body('cat.jpg'), { localFilesRoot: allowed, maxImageBytes: 100 })).rejects.toMatchObject({
    status: 400,
    message: 'image is larger than 100 bytes',
  });
});
