#!/usr/bin/env node
// Load test of the OpenAI-compatible server (issue #8): N concurrent streaming clients on
// loopback, each sending requests back to back (closed loop) — 1 image of 1 tile (448²) +
// a ~30-token question, max_tokens 128 — against a model at release shapes with random
// weights (the tokenizer comes from a fixture of the same family: ids only matter as ids).
// Per concurrency level: output tokens/s over the level's wall time, time to first token
// (first content chunk) p50/p99, and the ratios the issue asks for (throughput vs the
// 1-client rate, p99 TTFT vs the 1-client TTFT).
//   node bench/loadtest.mjs --config bench/configs/InternVL2-8B.json --tokenizer test/fixtures/models/tiny-qwen2 \
//     --concurrency 1 8 32 128 --requests 3 --out FILE
// First, before sharp and the addon load: with libuv's pool not sized as `internvl serve` sizes
// it (or as --uv-threadpool N says), this runs the load test again in a child process that is.
import { uvThreadpoolSize } from './loadtest_threadpool.mjs';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { InternVL, runtimeInfo, serve } from '../dist/index.js';
import { mixedStepsDefault } from '../dist/engine/mixedStepsDefault.js';
import { arg } from './args.mjs';
import { loadtestJson } from './loadtest_json.mjs';

const config = arg('--config', [])[0];
const tokenizerDir = arg('--tokenizer', [])[0];
const levels = arg('--concurrency', ['1', '8', '32', '128']).map(Number);
const perClient = Number(arg('--requests', ['3'])[0]);
const maxTokens = Number(arg('--max-tokens', ['128'])[0]);
const dtype = arg('--dtype', ['bf16'])[0];
const backend = arg('--backend', ['cuda'])[0];
// --ramp-ms T|auto: client i starts at i·T/N instead of all at once (steady-state TTFT rather
// than the burst of N simultaneous first requests); auto = one request's time at 1 client.
const rampArg = arg('--ramp-ms', ['0'])[0];
// --same-image: every request sends the same picture and question, so after the first one
// the prefix cache serves the whole prompt (the old behaviour); by default each request has
// its own picture, as different users' requests do, and only the system prompt is shared.
const sameImage = process.argv.includes('--same-image');
// --mixed-steps / --no-mixed-steps: running requests decode inside each prefill step or not
// (LoadOptions.mixedSteps); neither: the engine's default for the model (mixedStepsDefault)
const mixedFlag = process.argv.includes('--mixed-steps') ? true : process.argv.includes('--no-mixed-steps') ? false : undefined;
// --vision-ahead: a vision thread encodes each request's tiles as it arrives (LoadOptions.visionAhead);
// without it the option is not passed (the engine's default, off)
const visionAhead = process.argv.includes('--vision-ahead');
// --prefill-chunk-tokens N: prompt tokens per prefill step (LoadOptions.prefillChunkTokens)
const chunkArg = arg('--prefill-chunk-tokens', [])[0];
const prefillChunkTokens = chunkArg === undefined ? undefined : Number(chunkArg);
// (--uv-threadpool N, read by loadtest_threadpool.mjs: libuv's threadpool size, 0 for Node's
// default; without it, the size `internvl serve` runs with)
const out = arg('--out', ['bench/results/loadtest.json'])[0];
if (!config || !tokenizerDir) throw new Error('--config and --tokenizer are required');

// A checkpoint directory with the release config and a fixture's byte-level BPE tokenizer
// (chatml special tokens and InternVL's image tokens), its vocabulary padded with filler
// words up to the config's vocab_size so every id the random model emits has text (SSE
// chunks, hence time to first token, then behave as with a real tokenizer).
const dir = mkdtempSync(join(tmpdir(), 'ivl-load-'));
copyFileSync(config, join(dir, 'config.json'));
for (const f of ['tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(tokenizerDir, f), join(dir, f));
{
  const tok = JSON.parse(readFileSync(join(tokenizerDir, 'tokenizer.json'), 'utf8'));
  const vocabSize = JSON.parse(readFileSync(config, 'utf8')).llm_config.vocab_size;
  const taken = new Set([...Object.values(tok.model.vocab), ...tok.added_tokens.map((a) => a.id)]);
  for (let id = 0; id < vocabSize; id++) if (!taken.has(id)) tok.model.vocab[`\u0120w${id}`] = id;
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tok));
}
const maxLevel = Math.max(...levels);
const mixedSteps = mixedFlag ?? mixedStepsDefault(backend);
const kvCacheTokens = maxLevel * (256 + 64 + maxTokens) + 4096;
const t0 = performance.now();
const model = await InternVL.load(dir, {
  backend,
  dummyWeights: true,
  kvCacheTokens,
  dtype,
  ...(mixedFlag !== undefined ? { mixedSteps: mixedFlag } : {}),
  ...(visionAhead ? { visionAhead: true } : {}),
  ...(prefillChunkTokens !== undefined ? { prefillChunkTokens } : {}),
});
const loadS = (performance.now() - t0) / 1000;
const running = await serve(model, { host: '127.0.0.1', port: 0, maxQueue: 4 * maxLevel });

// 448×448 noise tiles as JPEG data URLs: picture k is distinct for every k (different users).
async function picture(k) {
  const px = Buffer.alloc(448 * 448 * 3);
  // k is mixed in before the multiply: XORed in after it (as before 2026-11-29) it only touched
  // the bits >>> 24 drops, so every "distinct" picture was the same and the prefix cache served
  // its tiles (no ViT pass after the first request)
  const seed = Math.imul(k + 1, 0x9e3779b1);
  for (let i = 0; i < px.length; i++) px[i] = Math.imul((i + 1) ^ seed, 2654435761) >>> 24;
  const jpg = await sharp(px, { raw: { width: 448, height: 448, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
  return `data:image/jpeg;base64,${jpg.toString('base64')}`;
}
let nextPicture = 0;
const pictures = async (count) => Promise.all(Array.from({ length: count }, () => picture(sameImage ? 0 : nextPicture++)));
// ~30 tokens: the padded tokenizer has no merges, so a token is a byte
const question = 'Describe this picture briefly.';

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

// n closed-loop clients (images[c]: client c's requests, sent back to back), each starting
// ramp·c/n ms in, in a worker thread (bench/loadtest_clients.mjs says why).
function clients(images, ramp) {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./loadtest_clients.mjs', import.meta.url), {
      workerData: { url: running.url, images, ramp, maxTokens, question },
    });
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => code !== 0 && reject(new Error(`load test clients exited with ${code}`)));
  });
}

// The server side of each request, from the result chat() resolves with (the server's only
// call into the model): JS preprocessing, and the engine's queue wait and first token
// (Timings.queueMs / firstTokenMs, from submission to the engine), so a TTFT can be split
// into client/HTTP + preprocessing + engine; `at` (when the server called chat(), on the
// clock the client worker's start times use) places each in its level's arrivals.
const served = [];
const servedAt = [];
// performance.now() counts from each thread's own origin: this sum is one clock for both threads
const wallNow = () => performance.timeOrigin + performance.now();
{
  const chat = model.chat.bind(model);
  model.chat = async (opts) => {
    const at = wallNow();
    const r = await chat(opts);
    served.push(r.timings);
    servedAt.push(at);
    return r;
  };
}
const splitOf = (ts) => {
  const have = ts.filter((t) => t.firstTokenMs !== undefined);
  if (!have.length) return undefined;
  return {
    preprocess_p50_ms: pct(ts.map((t) => t.preprocessMs), 50),
    preprocess_p99_ms: pct(ts.map((t) => t.preprocessMs), 99),
    engine_queue_p50_ms: pct(have.map((t) => t.queueMs ?? 0), 50),
    engine_queue_p99_ms: pct(have.map((t) => t.queueMs ?? 0), 99),
    engine_first_token_p50_ms: pct(have.map((t) => t.firstTokenMs), 50),
    engine_first_token_p99_ms: pct(have.map((t) => t.firstTokenMs), 99),
  };
};

const info = runtimeInfo();
const [warm] = await clients([[(await pictures(1))[0]]], 0); // warm-up (kernels, allocator)
const rampMs = rampArg === 'auto' ? Math.round(warm.totalMs) : Number(rampArg);
// the load-time matmul warm-up (EngineOptions::warmMatmulShapes) unless the environment turns it off
const warmMatmuls = process.env.INTERNVL_WARM_MATMULS !== '0';
const doc = { engine: 'internvl-node', what: 'loadtest', uv_threadpool_size: uvThreadpoolSize, warm_matmuls: warmMatmuls, backend, gpu: backend === 'cuda' ? info.cuda.devices[0]?.name : 'cpu', date: new Date().toISOString().slice(0, 10), config, dtype, load_dummy_s: loadS, max_tokens: maxTokens, requests_per_client: perClient, ramp_ms: rampMs, distinct_images: !sameImage, mixed_steps: mixedSteps, vision_ahead: visionAhead, prefill_chunk_tokens: prefillChunkTokens ?? null, clients_in_worker: true, levels: {} };
// The 1-client level is every ratio's base: at least 8 requests there, so its TTFT is not one
// of 3 samples (a 3-request base moved 37 → 46 ms between two runs of 2026-11-29).
const requestsAt = (n) => (n === 1 ? Math.max(perClient, 8) : perClient);
// One level: n closed-loop clients, requestsAt(n) requests each, starting spread over `ramp` ms.
async function level(n, ramp) {
  const k = requestsAt(n);
  const images = await pictures(n * k);
  const perClientImages = Array.from({ length: n }, (_, c) => images.slice(c * k, (c + 1) * k));
  const st0 = model.stats();
  const servedFrom = served.length;
  const begin = performance.now();
  const beginWall = wallNow();
  const results = await clients(perClientImages, ramp);
  const wallS = (performance.now() - begin) / 1000;
  const tokens = results.reduce((a, r) => a + r.tokens, 0);
  const ttft = results.map((r) => r.ttftMs);
  const gaps = results.flatMap((r) => r.gaps);
  const st1 = model.stats();
  const steps = st1.decodeSteps - st0.decodeSteps;
  const ms = (t) => (t === undefined ? null : Math.round(t * 10) / 10);
  const since = (t) => ms(t - beginWall);
  return {
    requests: results.length, wall_s: wallS, output_tokens: tokens, tokens_per_s: tokens / wallS,
    ttft_p50_ms: pct(ttft, 50), ttft_p99_ms: pct(ttft, 99), ttft_max_ms: Math.max(...ttft),
    // inter-token latency over every gap between a stream's content chunks (what a prefill
    // step, or a mixed one, costs the running streams)
    itl_p50_ms: gaps.length ? pct(gaps, 50) : undefined, itl_p99_ms: gaps.length ? pct(gaps, 99) : undefined, max_batch: st1.maxBatchSequences,
    prefix_hit_tokens_per_request: (st1.prefixHitTokens - st0.prefixHitTokens) / results.length,
    // server side (absent before the engine reported first-token times)
    ttft_split: splitOf(served.slice(servedFrom)),
    // where the engine thread's time went over the level (cumulative counters of stats())
    engine: {
      decode_steps: steps,
      prefill_steps: st1.prefillSteps - st0.prefillSteps,
      mixed_steps: st1.mixedSteps - st0.mixedSteps,
      // builds before visionAhead have no such counter
      vision_ahead_tiles: (st1.visionAheadTiles ?? 0) - (st0.visionAheadTiles ?? 0),
      decode_forward_ms_per_step: (st1.decodeForwardMs - st0.decodeForwardMs) / steps,
      decode_sample_ms_per_step: (st1.decodeSampleMs - st0.decodeSampleMs) / steps,
      decode_emit_ms_per_step: (st1.decodeEmitMs - st0.decodeEmitMs) / steps,
    },
    // each request, from the level's start: when the client sent it and its TTFT; when the
    // server called chat() and that request's preprocessing, engine queue and first token
    // (clusters of arrivals and what each member waited for)
    per_request: results.map((r) => ({ client: r.client, start_ms: since(r.startWallMs), ttft_ms: ms(r.ttftMs) })).sort((a, b) => a.start_ms - b.start_ms),
    per_request_server: served
      .slice(servedFrom)
      .map((t, i) => ({ at_ms: since(servedAt[servedFrom + i]), preprocess_ms: ms(t.preprocessMs), queue_ms: ms(t.queueMs), first_token_ms: ms(t.firstTokenMs) }))
      .sort((a, b) => a.at_ms - b.at_ms),
  };
}
// progress lines without the per-request records
const brief = ({ per_request, per_request_server, ...rest }) => JSON.stringify(rest);
for (const n of levels) {
  doc.levels[n] = await level(n, rampMs);
  console.log(n, brief(doc.levels[n]));
}
// --burst-levels N ...: those levels again with every client starting at once (the opening
// burst: its p99 TTFT is bounded below by prefilling all N prompts, see the README)
const burstLevels = arg('--burst-levels', []).map(Number);
if (burstLevels.length) doc.burst = {};
for (const n of burstLevels) {
  doc.burst[n] = await level(n, 0);
  console.log('burst', n, brief(doc.burst[n]));
}
const base = doc.levels[levels[0]];
for (const n of levels) {
  doc.levels[n].throughput_vs_1 = doc.levels[n].tokens_per_s / base.tokens_per_s;
  doc.levels[n].p99_ttft_vs_1 = doc.levels[n].ttft_p99_ms / base.ttft_p50_ms;
}
for (const n of burstLevels) doc.burst[n].p99_ttft_vs_1 = doc.burst[n].ttft_p99_ms / base.ttft_p50_ms;
writeFileSync(out, loadtestJson(doc));
await running.close(1000);
model.dispose();
