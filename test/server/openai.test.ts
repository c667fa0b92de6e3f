/**
 * The OpenAI-compatible server, driven by the official `openai` client on loopback,
 * answers as model.chat does — checked against the PyTorch goldens of the tiny
 * Qwen2 fixture — and refuses bad requests with OpenAI-style errors.
 */
import { join } from 'node:path';
import OpenAI from 'openai';
import { type GoldenCase, fixturesDir } from '../helpers/goldens.js';
import { golden, imageUserMessages, useServedModel } from '../helpers/openaiServer.js';

const textCase = golden.cases.find((c) => c.name === 'text') as GoldenCase;
const imageCase = golden.cases.find((c) => c.name === 'image') as GoldenCase;
const served = useServedModel({ apiKey: 'sk-test', allowLocalFiles: join(fixturesDir, 'images'), maxBodyBytes: 4 << 20 });

test('GET /v1/models lists the model', async () => {
  const list = await served.client.models.list();
  expect(list.data.map((m) => m.id)).toEqual(['tiny-qwen2']);
});

test('a text completion equals the golden greedy response', async () => {
  const r = await served.client.chat.completions.create({
    model: 'tiny-qwen2',
    messages: [{ role: 'user', content: textCase.question as string }],
    max_tokens: 24,
    temperature: 0,
  });
  expect(r.choices[0].message.content).toBe(textCase.response);
  expect(r.usage?.prompt_tokens).toBe(textCase.input_ids?.length);
  expect(r.usage?.completion_tokens).toBe(textCase.generated_ids?.length);
});

test('an image given as a data: URL streams the golden response', async () => {
  const stream = await served.client.chat.completions.create({
    model: 'tiny-qwen2',
    messages: imageUserMessages(imageCase.question as string),
    max_tokens: 24,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
    usage = chunk.usage ?? usage;
  }
  expect(text).toBe(imageCase.response);
  expect(finish).not.toBeNull();
  expect(usage?.prompt_tokens).toBe(imageCase.input_ids?.length);
});

test('a wrong API key is refused with 401', async () => {
  const bad = new OpenAI({ baseURL: `${served.running.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
  await expect(bad.models.list()).rejects.toMatchObject({ status: 401 });
});

test.each([
  [{ messages: [] }, 'messages must be a non-empty array'],
  [{ messages: [{ role: 'assistant', content: 'hi' }] }, 'expected a user message'],
  [{ messages: [{ role: 'user', content: 'x' }], max_tokens: 0 }, 'maxNewTokens'],
  [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: '../../package.json' } }] }] }, 'outside the allowed directory'],
  [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }] }, 'remote image URLs are not fetched'],
])('bad request %j → 400 naming the problem', async (body, message) => {
  const res = await fetch(`${served.running.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: 'Bearer sk-test', 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny-qwen2', ...body }),
  });
  expect(res.status).toBe(400);
  const j = (await res.json()) as { error: { message: string; type: string } };
  expect(j.error.type).toBe('invalid_request_error');
  expect(j.error.message).toContain(message);
});

test('an oversized body gets 413', async () => {
  const res = await fetch(`${served.running.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: 'Bearer sk-test', 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(5 << 20) }] }),
  });
  expect(res.status).toBe(413);
});

test('a client that disconnects mid-stream cancels its request', async () => {
  const ac = new AbortController();
  const res = await fetch(`${served.running.url}/v1/chat/completions`, {
    method: 'POST',
    signal: ac.signal,
    headers: { authorization: 'Bearer sk-test', 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'count' }], max_tokens: 100000, temperature: 0, stream: true }),
  });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  ac.abort();
  let inflight = -1;
  for (let i = 0; i < 100 && inflight !== 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    inflight = ((await (await fetch(`${served.running.url}/health`)).json()) as { inflight: number }).inflight;
  }
  expect(inflight).toBe(0);
  // the engine stopped generating for it (max_tokens was 100000) and its pages are free again
  const st = served.model.stats();
  expect(st.runningRequests).toBe(0);
  expect(st.kvFreeBlocks).toBe(st.kvBlocks);
  const steps = st.decodeSteps;
  await new Promise((r) => setTimeout(r, 200));
  expect(served.model.stats().decodeSteps).toBe(steps);
});
