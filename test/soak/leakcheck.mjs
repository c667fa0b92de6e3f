// The native leak check's workload (#11), run by test/soak/leakcheck.sh under an
// AddressSanitizer build of the addon with LeakSanitizer on: every native path a user
// reaches — loads of all four families, chats with and without images, batches,
// streams, cancellations at random points, dispose with requests in flight, load
// failures on broken checkpoints, bad arguments, image decode errors — then a normal
// exit, where LeakSanitizer reports what is still allocated.
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMix } from './mix.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { InternVL, loadImage } = await import(join(root, 'dist', 'index.js'));
const { EngineModel } = await import(join(root, 'dist', 'engine', 'nativeModel.js'));
const models = join(root, 'test', 'fixtures', 'models');
const images = [readFileSync(join(root, 'test/fixtures/images/wide.jpg')), readFileSync(join(root, 'test/fixtures/images/tall.png'))];
const requests = Number(process.argv[2] ?? 200);

const expectCode = async (p, code) => {
  try {
    await p;
  } catch (e) {
    if (e?.code === code) return;
    throw e;
  }
  throw new Error(`expected ${code}`);
};

for (const family of ['tiny-internlm2', 'tiny-phi3', 'tiny-qwen2', 'tiny-yi']) {
  const m = await InternVL.load(join(models, family), { backend: 'cpu', threads: 2 });
  await m.chat({ question: 'Hello', generation: { maxNewTokens: 4 } });
  await m.chat({ question: 'Describe.', images: [images[0]], generation: { maxNewTokens: 4 } });
  await m.batchChat({ questions: ['a', 'b'], images: [images[1], null], generation: { maxNewTokens: 3 } });
  m.dispose();
}
console.log('families done');

const model = await InternVL.load(join(models, 'tiny-internlm2'), { backend: 'cpu' });
const counts = await runMix(model, { n: requests, seed: 3, concurrency: 4, images });
console.log('mix done', JSON.stringify(counts));
const engine = model.engine;
await engine.encodeImages(new Float32Array(2 * 3 * 112 * 112), 2);
await expectCode(engine.encodeImages(new Float32Array(7), 1), 'ERR_INVALID_ARG');
// dispose with requests running and queued
const inflight = [0, 1, 2].map((i) => model.chat({ question: 'Count.', generation: { maxNewTokens: 5000, doSample: true, seed: i } }));
await new Promise((r) => setTimeout(r, 30));
model.dispose();
await Promise.allSettled(inflight);
console.log('dispose done');

// load failures
const dir = mkdtempSync(join(tmpdir(), 'leak-'));
try {
  cpSync(join(models, 'tiny-yi'), dir, { recursive: true });
  truncateSync(join(dir, 'model-00002-of-00002.safetensors'), 1000);
  await expectCode(EngineModel.load(dir, { imageContextTokenId: 7 }), 'ERR_CHECKPOINT');
  writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": {"x": "../../etc/passwd"}}');
  await expectCode(EngineModel.load(dir, { imageContextTokenId: 7 }), 'ERR_CHECKPOINT');
  writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": [1, 2');
  await expectCode(EngineModel.load(dir, { imageContextTokenId: 7 }), 'ERR_CHECKPOINT');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
await expectCode(loadImage(Buffer.from('not an image')), 'ERR_IMAGE');
const dummy = mkdtempSync(join(tmpdir(), 'leak-dummy-'));
cpSync(join(models, 'tiny-qwen2', 'config.json'), join(dummy, 'config.json'));
const d = await EngineModel.load(dummy, { imageContextTokenId: 7, dummyWeights: true });
await d.generate({ sequences: [{ inputIds: Int32Array.from([1, 2, 3]) }], maxNewTokens: 8, eosTokenIds: [], sampling: { doSample: true, temperature: 1, topK: 5, topP: 0.9, repetitionPenalty: 1.1, seed: 1 } }).promise;
d.dispose();
rmSync(dummy, { recursive: true, force: true });
console.log('leakcheck workload done');
// Objects JS no longer references but V8 has not collected yet keep their native
// finalizers pending at exit, and LeakSanitizer would report those allocations; collect
// them first (run with --expose-gc) so what remains is what nothing can ever free.
if (typeof globalThis.gc === 'function') {
  for (let i = 0; i < 5; i++) {
    globalThis.gc();
    await new Promise((r) => setImmediate(r));
  }
}
