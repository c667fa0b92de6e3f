/**
 * `n` choices on the OpenAI-compatible server, through the official `openai` client: greedy
 * choices each equal the PyTorch golden response (the prompt counted once in usage, the
 * completions summed); streamed choices arrive under their own index with their own finish;
 * sampled choice i is the n = 1 response with seed + i (what the server documents), and bad
 * values of n are 400s naming the parameter.
 */
import type OpenAI from 'openai';
import type { GoldenCase } from '../helpers/goldens.js';
import { golden, imageUserMessages, useServedModel } from '../helpers/openaiServer.js';

const textCase = golden.cases.find((c) => c.name === 'text') as GoldenCase;
const imageCase = golden.cases.find((c) => c.name === 'image') as GoldenCase;
const served = useServedModel();

const ask = (extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming>) =>
  served.client.chat.completions.create({
    model: 'tiny-qwen2',
    messages: [{ role: 'user', content: textCase.question as string }],
    max_tokens: 24,
    ...extra,
  });

test('n = 3 greedy: every choice is the golden response; prompt counted once, completions summed', async () => {
  const r = await ask({ n: 3, temperature: 0 });
  expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2]);
  for (const c of r.choices) {
    expect(c.message.content).toBe(textCase.response);
    expect(c.finish_reason).not.toBeNull();
  }
  expect(r.usage?.prompt_tokens).toBe(textCase.input_ids?.length);
  expect(r.usage?.completion_tokens).toBe(3 * (textCase.generated_ids?.length ?? NaN));
  expect(r.usage?.total_tokens).toBe((r.usage?.prompt_tokens ?? 0) + (r.usage?.completion_tokens ?? 0));
});

test('n = 3 sampled with seed 7: choice i is the n = 1 answer with seed 7 + i, and they differ', async () => {
  const sampled = { temperature: 1.3, top_p: 1 } as const;
  const r = await ask({ n: 3, seed: 7, ...sampled });
  const alone = await Promise.all([7, 8, 9].map((seed) => ask({ seed, ...sampled })));
  expect(r.choices.map((c) => c.message.content)).toEqual(alone.map((a) => a.choices[0].message.content));
  expect(new Set(r.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
});

test('n = 2 streamed with an image: each index carries the golden response and its own finish', async () => {
  const stream = await served.client.chat.completions.create({
    model: 'tiny-qwen2',
    messages: imageUserMessages(imageCase.question as string),
    max_tokens: 24,
    temperature: 0,
    n: 2,
    stream: true,
    stream_options: { include_usage: true },
  });
  const text = ['', ''];
  const finish: Array<string | null> = [null, null];
  const roles = [0, 0];
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    usage = chunk.usage ?? usage;
    for (const c of chunk.choices) {
      text[c.index] += c.delta?.content ?? '';
      if (c.delta?.role === 'assistant') roles[c.index]++;
      finish[c.index] = c.finish_reason ?? finish[c.index];
    }
  }
  expect(text).toEqual([imageCase.response, imageCase.response]);
  expect(roles).toEqual([1, 1]);
  expect(finish.every((f) => f !== null)).toBe(true);
  expect(usage?.prompt_tokens).toBe(imageCase.input_ids?.length);
  expect(usage?.completion_tokens).toBe(2 * (imageCase.generated_ids?.length ?? NaN));
});

test.each([0, 17, 1.5, '2'])('n = %p is a 400 naming n', async (n) => {
  const res = await fetch(`${served.running.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', n, messages: [{ role: 'user', content: 'hi' }] }),
  });
  expect(res.status).toBe(400);
  const body = (await res.json()) as { error: { param: string; message: string } };
  expect(body.error.param).toBe('n');
  expect(body.error.message).toMatch(/n must be an integer from 1 to 16/);
});
