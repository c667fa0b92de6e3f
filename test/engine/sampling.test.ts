/**
 * The sampler against a plain JS reference of transformers' logits processors
 * (RepetitionPenalty → Temperature → TopK → TopP → softmax) and of the documented
 * PRNG (xoshiro256** seeded by splitmix64, u = (next >> 11) · 2⁻⁵³, inverse CDF in
 * id order), through the samplerProbe test hook; then seeded sampling end to end.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { loadNative } from '../../lib/native.js';
import type { NativeGenerateRequest, NativeSampling } from '../../lib/nativeTypes.js';
import { TINY, promptIds, tempDir, tinyPixels, writeTinyModel } from './tinyModel.js';

const f = Math.fround;
const M64 = (1n << 64n) - 1n;

class RefRng {
  private s: bigint[] = [];
  constructor(seed: number) {
    let x = BigInt(seed);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b97f4a7c15n) & M64;
      let z = x;
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
      this.s.push(z ^ (z >> 31n));
    }
  }
  private static rotl(x: bigint, k: bigint): bigint {
    return ((x << k) | (x >> (64n - k))) & M64;
  }
  next(): bigint {
    const s = this.s;
    const result = (RefRng.rotl((s[1] * 5n) & M64, 7n) * 9n) & M64;
    const t = (s[1] << 17n) & M64;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = RefRng.rotl(s[3], 45n);
    return result;
  }
  uniform(): number {
    return Number(this.next() >> 11n) * 2 ** -53;
  }
}

function softmaxF32(s: number[]): number[] {
  const mx = Math.max(...s);
  const e = s.map((x) => f(Math.exp(f(x - mx))));
  const sum = e.reduce((a, b) => a + b, 0);
  const inv = f(1 / sum);
  return e.map((x) => f(x * inv));
}

/** transformers' processors in generate's order, in fp32. */
function refProcess(logits: Float32Array, p: NativeSampling, generated: number[]): number[] {
  const s = Array.from(logits);
  if (p.repetitionPenalty !== 1) {
    const pen = f(p.repetitionPenalty);
    for (const id of new Set(generated)) s[id] = s[id] < 0 ? f(s[id] * pen) : f(s[id] / pen);
  }
  if (!p.doSample) return s;
  if (p.temperature !== 1) for (let i = 0; i < s.length; i++) s[i] = f(s[i] / f(p.temperature));
  if (p.topK > 0 && p.topK < s.length) {
    const kth = [...s].sort((a, b) => b - a)[p.topK - 1];
    for (let i = 0; i < s.length; i++) if (s[i] < kth) s[i] = -Infinity;
  }
  if (p.topP < 1) {
    const order = s.map((_, i) => i).sort((a, b) => s[a] - s[b] || a - b);
    const probs = softmaxF32(order.map((i) => s[i]));
    const cut = f(1 - p.topP);
    let cum = 0;
    for (let j = 0; j < order.length - 1; j++) {
      cum = f(cum + probs[j]);
      if (cum <= cut) s[order[j]] = -Infinity;
    }
  }
  return softmaxF32(s);
}

function refDraws(probs: number[], seed: number, n: number): number[] {
  const rng = new RefRng(seed);
  const total = probs.reduce((a, b) => a + b, 0);
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const u = rng.uniform() * total;
    let cum = 0;
    let pick = -1;
    for (let i = 0; i < probs.length; i++) {
      if (probs[i] <= 0) continue;
      cum += probs[i];
      pick = i;
      if (cum > u) break;
    }
    out.push(pick);
  }
  return out;
}

function randomLogits(n: number, seed: number, scale = 3): Float32Array {
  let a = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a * 1103515245 + 12345) % 2147483648;
    out[i] = (a / 2147483648 - 0.5) * 2 * scale;
  }
  return out;
}

const base: NativeSampling = { doSample: true, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 42 };

describe('sampler vs the JS reference', () => {
  const addon = loadNative();
  const cases: Array<[string, Partial<NativeSampling>, number[]]> = [
    ['plain softmax', {}, []],
    ['temperature 0.7', { temperature: 0.7 }, []],
    ['temperature 1.8', { temperature: 1.8 }, []],
    ['top-k 5', { topK: 5 }, []],
    ['top-k 1 (argmax)', { topK: 1 }, []],
    ['top-p 0.9', { topP: 0.9 }, []],
    ['top-p 0.3 + top-k 10 + temperature 0.8', { topP: 0.3, topK: 10, temperature: 0.8 }, []],
    ['repetition penalty 1.3', { repetitionPenalty: 1.3 }, [3, 7, 7, 11, 40, 63]],
    ['repetition penalty 0.8, all together', { repetitionPenalty: 0.8, topK: 20, topP: 0.95, temperature: 0.9 }, [1, 2, 3, 2, 1]],
    ['seed 0', { seed: 0 }, []],
    ['big seed', { seed: 2 ** 53 - 1 }, []],
  ];
  test.each(cases)('%s', (_name, over, generated) => {
    const logits = randomLogits(64, 17);
    const p = { ...base, ...over };
    const probe = addon.samplerProbe(logits, Int32Array.from(generated), p, 500);
    const ref = refProcess(logits, p, generated);
    expect(probe.scores.length).toBe(64);
    for (let i = 0; i < 64; i++) expect(probe.scores[i]).toBeCloseTo(ref[i], 6);
    // the kept set is identical
    expect(Array.from(probe.scores, (x) => x > 0)).toEqual(ref.map((x) => x > 0));
    expect(Array.from(probe.tokens)).toEqual(refDraws(ref, p.seed, 500));
    // every draw is a kept token; with top-k 1 it is the argmax
    for (const t of probe.tokens) expect(ref[t]).toBeGreaterThan(0);
    if (p.topK === 1) expect(new Set(probe.tokens)).toEqual(new Set([Array.from(logits).indexOf(Math.max(...logits))]));
  });

  test('greedy applies the repetition penalty, then takes the first maximum', () => {
    const logits = new Float32Array([1, 5, 5, -2, 4.9]);
    const g = { ...base, doSample: false };
    expect(Array.from(addon.samplerProbe(logits, new Int32Array(), g, 1).tokens)).toEqual([1]);
    // penalize 1 and 2: 5/1.2 = 4.17 < 4.9
    const r = addon.samplerProbe(logits, Int32Array.from([1, 2, 2]), { ...g, repetitionPenalty: 1.2 }, 1);
    expect(Array.from(r.tokens)).toEqual([4]);
    expect(r.scores[3]).toBeCloseTo(-2, 6); // unpenalized
    expect(r.scores[1]).toBeCloseTo(5 / 1.2, 5);
    const neg = addon.samplerProbe(new Float32Array([-1, -3]), Int32Array.from([0]), { ...g, repetitionPenalty: 2 }, 1);
    expect(Array.from(neg.scores)).toEqual([-2, -3]);
  });

  test('the draw frequencies follow the probabilities', () => {
    const logits = new Float32Array([0, Math.log(2), Math.log(3), Math.log(4)]);
    const probe = addon.samplerProbe(logits, new Int32Array(), base, 20000);
    const counts = [0, 0, 0, 0];
    for (const t of probe.tokens) counts[t]++;
    counts.forEach((c, i) => expect(c / 20000).toBeCloseTo((i + 1) / 10, 1));
  });
});

describe('seeded sampling end to end', () => {
  let root: string;
  let model: EngineModel;
  beforeAll(async () => {
    root = tempDir('ivl-sampling-');
    model = await EngineModel.load(writeTinyModel(join(root, 'm'), { family: 'llama' }), {
      imageContextTokenId: TINY.imageContextId,
      threads: 2,
    });
  });
  afterAll(() => {
    model.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  const seqs = [
    { inputIds: Int32Array.from([1, 2, 3]) },
    { inputIds: promptIds([5], 1, [6, 7]), pixelValues: tinyPixels(1), tiles: 1 },
  ];
  const req = (sampling: NativeSampling, sequences = seqs): NativeGenerateRequest => ({
    sequences,
    maxNewTokens: 24,
    eosTokenIds: [],
    sampling,
    returnPromptLogits: true,
  });
  const toks = (r: { tokenIds: Int32Array }[]) => r.map((x) => Array.from(x.tokenIds));

  test('same seed → same tokens; another seed → other tokens; batch = alone', async () => {
    const p = { ...base, temperature: 1.5, seed: 7 };
    const a = await model.generate(req(p)).promise;
    const b = await model.generate(req(p)).promise;
    expect(toks(a)).toEqual(toks(b));
    const c = await model.generate(req({ ...p, seed: 8 })).promise;
    expect(toks(c)).not.toEqual(toks(a));
    const alone = await model.generate(req(p, [seqs[1]])).promise;
    expect(toks(alone)[0]).toEqual(toks(a)[1]);
  });

  test('the first sampled token is the reference draw over the prompt logits', async () => {
    const p = { ...base, temperature: 0.9, topK: 40, topP: 0.9, seed: 1234 };
    const [r] = await model.generate({ ...req(p, [seqs[0]]), maxNewTokens: 1 }).promise;
    const probs = refProcess(r.promptLogits!, p, []);
    expect(r.tokenIds[0]).toBe(refDraws(probs, p.seed, 1)[0]);
  });

  test('top-k 1 sampling is greedy', async () => {
    const greedy = await model.generate(req({ ...base, doSample: false })).promise;
    const k1 = await model.generate(req({ ...base, topK: 1, seed: 99 })).promise;
    expect(toks(k1)).toEqual(toks(greedy));
  });
});
