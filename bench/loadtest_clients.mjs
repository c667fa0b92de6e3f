// The load test's clients, run in a worker thread (bench/loadtest.mjs): real clients are other
// processes, so their SSE parsing must not queue behind the server's work on one event loop
// (in one thread, 32 clients' parsing of ~1,400 events/s delayed every new request's arrival
// and so inflated the TTFT the server was charged with).
//   workerData: { url, images: string[][] (per client, its requests' data URLs), ramp, maxTokens, question }
//   posts: [{ client, startWallMs, ttftMs, tokens, totalMs, gaps (ms between content chunks) }],
//   startWallMs on performance.timeOrigin + performance.now(), the clock the main thread shares
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';

const { url, images, ramp, maxTokens, question } = workerData;

async function one(image) {
  const start = performance.now();
  const startWallMs = performance.timeOrigin + start;
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'bench',
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: maxTokens,
      temperature: 0,
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: image } }, { type: 'text', text: question }] }],
    }),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttft;
  let last;
  const gaps = []; // between content chunks: inter-token latency as a client sees it
  let tokens = 0;
  let buf = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      const data = event.replace(/^data: /, '');
      if (data === '[DONE]') continue;
      const j = JSON.parse(data);
      if (j.choices?.[0]?.delta?.content) {
        const now = performance.now();
        if (ttft === undefined) ttft = now - start;
        else gaps.push(now - last);
        last = now;
      }
      if (j.usage) tokens = j.usage.completion_tokens;
    }
  }
  return { startWallMs, ttftMs: ttft ?? performance.now() - start, tokens, totalMs: performance.now() - start, gaps };
}

const n = images.length;
const results = [];
await Promise.all(
  images.map(async (mine, c) => {
    if (ramp > 0) await new Promise((r) => setTimeout(r, (c * ramp) / n));
    for (const image of mine) results.push({ client: c, ...(await one(image)) });
  }),
);
parentPort.postMessage(results);
