#!/usr/bin/env node
// Soak test (#11), run by hand, not by jest:
//
//   npm run build:ts && node --expose-gc test/soak/soak.mjs [--requests 1000] [--concurrency 4]
//        [--seed 1] [--model test/fixtures/models/tiny-internlm2] [--out bench/results/soak-DATE-cpu.json]
//
// 1,000 mixed requests (test/soak/mix.mjs: text, images, streams, batches, invalid ones,
// a third cancelled at random) on the CPU backend against a tiny fixture. Reports host
// memory (RSS, V8 heap, external / ArrayBuffer bytes, after a full GC) and open libuv
// handles before, during and after, and the engine's KV blocks at the end. Fails (exit 1)
// when blocks are not all free, a handle is left open, or memory after the run exceeds the
// warmed-up level by more than the bounds below.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { handles, runMix } from './mix.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const requests = Number(args.requests ?? 1000);
const concurrency = Number(args.concurrency ?? 4);
const seed = Number(args.seed ?? 1);
const modelDir = resolve(root, args.model ?? 'test/fixtures/models/tiny-internlm2');
const date = new Date().toISOString().slice(0, 10);
const out = resolve(root, args.out ?? `bench/results/soak-${date}-cpu.json`);
// What was measured: the commit, and whether the working tree differed from it.
function gitState() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'native', 'lib'], { cwd: root, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head}+uncommitted changes in native/ or lib/` : head;
  } catch {
    return 'unknown';
  }
}
const commit = args.commit ?? gitState();
// Growth allowed from the warmed-up level to the end (after GC): flat within noise.
const BOUNDS = { rssMiB: 48, heapUsedMiB: 8, arrayBuffersMiB: 16 };

if (typeof globalThis.gc !== 'function') {
  console.error('run with node --expose-gc');
  process.exit(2);
}
const { InternVL } = await import(join(root, 'dist', 'index.js'));

const MiB = 1 << 20;
async function memory() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  const f = (x) => Math.round((x / MiB) * 10) / 10;
  return { rssMiB: f(m.rss), heapUsedMiB: f(m.heapUsed), heapTotalMiB: f(m.heapTotal), externalMiB: f(m.external), arrayBuffersMiB: f(m.arrayBuffers) };
}

const images = [readFileSync(join(root, 'test/fixtures/images/wide.jpg')), readFileSync(join(root, 'test/fixtures/images/tall.png'))];
const startHandles = handles();
const beforeLoad = await memory();
const model = await InternVL.load(modelDir, { backend: 'cpu' });
const engine = model.engine;
const afterLoad = await memory();

// Warm-up: caches (tokenizer, sharp, allocator pools) reach their working size.
const warmupN = Math.max(20, Math.round(requests / 10));
const t0 = Date.now();
await runMix(model, { n: warmupN, seed: seed + 1000, concurrency, images });
// stderr is written below: open its handle now so it is in the baseline, not a "leak"
process.stderr.write(`soak: warmed up with ${warmupN} requests\n`);
const warm = await memory();
const warmHandles = handles();

const samples = [];
const every = Math.max(1, Math.round(requests / 10));
let lastSampled = 0;
const counts = await runMix(model, {
  n: requests,
  seed,
  concurrency,
  images,
  onProgress: (done) => {
    if (done - lastSampled >= every || done === requests) {
      lastSampled = done;
      const m = process.memoryUsage();
      samples.push({ done, rssMiB: Math.round(m.rss / MiB), heapUsedMiB: Math.round(m.heapUsed / MiB), handles: process.getActiveResourcesInfo().length });
      process.stderr.write(`soak: ${done}/${requests} rss ${Math.round(m.rss / MiB)} MiB heap ${Math.round(m.heapUsed / MiB)} MiB\n`);
    }
  },
});
const seconds = (Date.now() - t0) / 1000;
const end = await memory();
const endHandles = handles();
const stats = engine.stats();
model.dispose();
const afterDispose = await memory();
await new Promise((r) => setTimeout(r, 50));
const finalHandles = handles();

const growth = Object.fromEntries(Object.keys(BOUNDS).map((k) => [k, Math.round((end[k] - warm[k]) * 10) / 10]));
const failures = [];
if (stats.kvFreeBlocks !== stats.kvBlocks) failures.push(`KV blocks not all free: ${stats.kvFreeBlocks} of ${stats.kvBlocks}`);
if (stats.runningRequests || stats.queuedRequests) failures.push(`requests still in the engine: ${JSON.stringify(stats)}`);
for (const [k, bound] of Object.entries(BOUNDS)) if (growth[k] > bound) failures.push(`${k} grew ${growth[k]} (bound ${bound})`);
const total = (h) => Object.values(h).reduce((a, b) => a + b, 0);
if (total(endHandles) > total(warmHandles)) failures.push(`open handles grew: ${JSON.stringify(warmHandles)} -> ${JSON.stringify(endHandles)}`);

const report = {
  date,
  what: 'soak: mixed requests with random cancellations, CPU backend (test/soak/soak.mjs)',
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, totalMemGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
  commit,
  model: modelDir.slice(root.length + 1),
  requests,
  warmupRequests: warmupN,
  concurrency,
  seed,
  seconds: Math.round(seconds * 10) / 10,
  outcomes: counts,
  memory: { beforeLoad, afterLoad, warm, end, afterDispose, growthWarmToEnd: growth, bounds: BOUNDS, samples },
  handles: { start: startHandles, warm: warmHandles, end: endHandles, afterDispose: finalHandles },
  engine: { kvBlocks: stats.kvBlocks, kvFreeBlocks: stats.kvFreeBlocks, completedRequests: stats.completedRequests, decodeSteps: stats.decodeSteps, maxBatchSequences: stats.maxBatchSequences, maxBatchRequests: stats.maxBatchRequests },
  passed: failures.length === 0,
  failures,
};
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
console.log(JSON.stringify({ requests, seconds: report.seconds, outcomes: counts, warm, end, growth, handles: report.handles, passed: report.passed, failures }, null, 2));
console.log(`written ${out}`);
process.exitCode = failures.length ? 1 : 0;
