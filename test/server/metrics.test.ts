/**
 * GET /metrics (Prometheus text format 0.0.4): well-formed (every sample under a HELP and TYPE
 * line of its family, values numbers), behind the API key, and the figures follow what the
 * test itself did: responses by route and status (a 404 and a client that hung up included),
 * the tokens the completions returned (their `usage`), requests and first tokens from the
 * engine, KV blocks all free when idle.
 */
import { useServedModel } from '../helpers/openaiServer.js';

const KEY = 'sk-metrics';
const served = useServedModel({ apiKey: KEY });

/** Parses the exposition, checking its form; returns sample name{labels} → value. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Map<string, string>();
  let helped = '';
  for (const line of text.trimEnd().split('\n')) {
    let m = /^# HELP (internvl_[a-z_]+) \S.*$/.exec(line);
    if (m) {
      helped = m[1];
      continue;
    }
    m = /^# TYPE (internvl_[a-z_]+) (counter|gauge|summary)$/.exec(line);
    if (m) {
      expect(m[1]).toBe(helped); // HELP then TYPE of the same family
      typed.set(m[1], m[2]);
      continue;
    }
    m = /^(internvl_[a-z_]+)(\{[a-z]+="[^"]*"(?:,[a-z]+="[^"]*")*\})? (-?[0-9.e+-]+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const family = m[1].replace(/_(sum|count)$/, '');
    expect(typed.has(m[1]) || typed.get(family) === 'summary').toBe(true);
    expect(samples.has(m[1] + (m[2] ?? ''))).toBe(false);
    samples.set(m[1] + (m[2] ?? ''), Number(m[3]));
  }
  return samples;
}

async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${served.running.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

test('behind the API key', async () => {
  expect((await fetch(`${served.running.url}/metrics`)).status).toBe(401);
  expect((await fetch(`${served.running.url}/metrics`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
});

test('counts what was served: responses by status, tokens, engine requests and first tokens', async () => {
  const before = await scrape();
  const get = (m: Map<string, number>, k: string) => m.get(k) ?? 0;
  const ok = 'internvl_http_responses_total{route="/v1/chat/completions",status="200"}';

  const a = await served.client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 5 });
  const stream = await served.client.chat.completions.create({
    model: 'm',
    messages: [{ role: 'user', content: 'Tell me more' }],
    max_tokens: 7,
    stream: true,
    stream_options: { include_usage: true },
  });
  let streamed: { prompt_tokens: number; completion_tokens: number } | undefined;
  for await (const c of stream) if (c.usage) streamed = c.usage;
  expect((await fetch(`${served.running.url}/nowhere/${'x'.repeat(20)}`)).status).toBe(404);
  // a client that hangs up mid-stream: counted as 499 once the server sees the close
  const ac = new AbortController();
  const res = await fetch(`${served.running.url}/v1/chat/completions`, {
    method: 'POST',
    signal: ac.signal,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ model: 'm', stream: true, max_tokens: 400, messages: [{ role: 'user', content: 'Go on' }] }),
  });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  ac.abort();
  const hungUp = 'internvl_http_responses_total{route="/v1/chat/completions",status="499"}';
  let after = await scrape();
  for (let i = 0; i < 200 && get(after, hungUp) === get(before, hungUp); i++) {
    await new Promise((r) => setTimeout(r, 10));
    after = await scrape();
  }

  expect(get(after, ok) - get(before, ok)).toBe(2);
  expect(get(after, hungUp) - get(before, hungUp)).toBe(1);
  expect(get(after, 'internvl_http_responses_total{route="other",status="404"}') - get(before, 'internvl_http_responses_total{route="other",status="404"}')).toBe(1);
  expect(after.get('internvl_http_responses_total{route="/metrics",status="401"}')).toBeGreaterThanOrEqual(2);
  const usage = a.usage as { prompt_tokens: number; completion_tokens: number };
  expect(get(after, 'internvl_prompt_tokens_total') - get(before, 'internvl_prompt_tokens_total')).toBe(usage.prompt_tokens + (streamed?.prompt_tokens ?? NaN));
  expect(get(after, 'internvl_generation_tokens_total') - get(before, 'internvl_generation_tokens_total')).toBe(
    usage.completion_tokens + (streamed?.completion_tokens ?? NaN),
  );
  // the engine: three requests admitted, each with its first token, and the idle cache all free
  await new Promise((r) => setTimeout(r, 50));
  after = await scrape();
  expect(get(after, 'internvl_queue_wait_seconds_count') - get(before, 'internvl_queue_wait_seconds_count')).toBe(3);
  expect(get(after, 'internvl_time_to_first_token_seconds_count') - get(before, 'internvl_time_to_first_token_seconds_count')).toBe(3);
  expect(get(after, 'internvl_time_to_first_token_seconds_sum')).toBeGreaterThan(get(before, 'internvl_time_to_first_token_seconds_sum'));
  expect(get(after, 'internvl_engine_requests_completed_total') - get(before, 'internvl_engine_requests_completed_total')).toBe(3);
  expect(after.get('internvl_requests_inflight')).toBe(0);
  expect(after.get('internvl_kv_blocks_free')).toBe(after.get('internvl_kv_blocks'));
  expect(after.get('internvl_kv_blocks')).toBeGreaterThan(0);
});
