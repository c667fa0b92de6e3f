/**
 * The decode-step split in the engine stats (decodeForwardMs / decodeSampleMs / decodeEmitMs,
 * native/runtime/scheduler.cpp): cumulative, never negative, and the host sampler's share
 * grows only with sampled rows (greedy rows are chosen by Backend::greedyTokens); a batch
 * mixing greedy, greedy-with-penalty and sampled rows (sampled on the thread pool: ≥ 4 of
 * them) gives each sequence the tokens it gets alone.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import type { NativeGenerateRequest, NativeSampling } from '../../lib/nativeTypes.js';
import { tempDir, TINY, writeTinyModel } from './tinyModel.js';
import { GREEDY } from '../helpers/faultHooks.js';

const SAMPLED: NativeSampling = { doSample: true, temperature: 0.9, topK: 0, topP: 0.9, repetitionPenalty: 1.1, seed: 5 };

let root: string;
let model: EngineModel;
beforeAll(async () => {
  root = tempDir('ivl-steptiming-');
  const dir = writeTinyModel(join(root, 'm'), { family: 'qwen2' });
  model = await EngineModel.load(dir, { imageContextTokenId: TINY.imageContextId, threads: 2 });
});
afterAll(async () => {
  await model?.dispose();
  rmSync(root, { recursive: true, force: true });
});

const req = (ids: number[], sampling: NativeSampling, maxNewTokens = 12): NativeGenerateRequest => ({
  sequences: [{ inputIds: Int32Array.from(ids) }],
  maxNewTokens,
  eosTokenIds: [],
  sampling,
});

test('greedy steps add no host sampling time; sampled steps do; all three are cumulative', async () => {
  const s0 = model.stats();
  for (const k of ['decodeForwardMs', 'decodeSampleMs', 'decodeEmitMs'] as const) expect(s0[k]).toBe(0);
  await model.generate(req([1, 2, 3], GREEDY)).promise;
  const s1 = model.stats();
  expect(s1.decodeSteps).toBeGreaterThan(0);
  expect(s1.decodeForwardMs).toBeGreaterThan(0);
  expect(s1.decodeEmitMs).toBeGreaterThanOrEqual(0);
  // greedy rows never reach the host sampler: its time is the empty call's only
  expect(s1.decodeSampleMs).toBeLessThan(s1.decodeForwardMs);
  await model.generate(req([4, 5, 6], SAMPLED)).promise;
  const s2 = model.stats();
  expect(s2.decodeForwardMs).toBeGreaterThan(s1.decodeForwardMs);
  expect(s2.decodeSampleMs).toBeGreaterThan(s1.decodeSampleMs);
  expect(s2.decodeEmitMs).toBeGreaterThanOrEqual(s1.decodeEmitMs);
});

test('greedy, penalized greedy and sampled rows in one batch = each alone', async () => {
  const cases: NativeGenerateRequest[] = [];
  for (let i = 0; i < 8; i++) {
    const prompt = [1 + i, 2 + (i % 3), 3, 4 + i];
    if (i % 4 === 0) cases.push(req(prompt, GREEDY, 10 + i));
    else if (i % 4 === 1) cases.push(req(prompt, { ...GREEDY, repetitionPenalty: 1.3 }, 10 + i));
    else cases.push(req(prompt, { ...SAMPLED, seed: 100 + i, topK: i % 2 ? 7 : 0 }, 10 + i));
  }
  const alone = [];
  for (const c of cases) alone.push(Array.from((await model.generate(c).promise)[0].tokenIds));
  expect(model.stats().maxBatchSequences).toBe(1);  // so far one request at a time
  const together = await Promise.all(cases.map((c) => model.generate(c).promise));
  expect(together.map((r) => Array.from(r[0].tokenIds))).toEqual(alone);
  expect(model.stats().maxBatchSequences).toBeGreaterThanOrEqual(6);
});
