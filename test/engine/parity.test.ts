/**
 * CPU engine vs the PyTorch goldens in test/fixtures (transformers fp32 on CPU,
 * cross-checked by the fixture script against a transcription of the original
 * InternVL2 code). Per family: raw ViT output, vision embeddings, last prompt
 * position logits, and greedy generated ids token for token for every case; the
 * batch case generated together equals the goldens and one-at-a-time.
 * Reads goldens with test/helpers/safetensors.ts, independent of the native loader.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import type { NativeGenerateRequest, NativeSequenceInput } from '../../lib/nativeTypes.js';
import { relErr, goldenSequence } from '../helpers/goldens.js';
import { readSafetensorsFile, type StTensor } from '../helpers/safetensors.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const goldens = join(fixtures, 'goldens');

interface Sample {
  question: string;
  images: string[];
  num_patches_list: number[];
  input_ids: number[];
  generated_ids: number[];
}
interface Case extends Partial<Sample> {
  name: string;
  logits?: string;
  vision?: string[];
  samples?: Sample[];
}
interface Golden {
  family: string;
  model_dir: string;
  eos_token_id: number;
  image_context_token_id: number;
  max_new_tokens: number;
  images: Record<string, { tiles: number }>;
  cases: Case[];
}


const families = existsSync(goldens)
  ? readdirSync(goldens)
      .filter((f) => /^tiny-.*\.json$/.test(f))
      .map((f) => f.slice(0, -5))
      .sort()
  : [];

test('goldens are present for the four families', () => {
  expect(families).toEqual(['tiny-internlm2', 'tiny-phi3', 'tiny-qwen2', 'tiny-yi']);
});

const pixels: Record<string, StTensor> = existsSync(join(goldens, 'pixels.safetensors'))
  ? readSafetensorsFile(join(goldens, 'pixels.safetensors'))
  : {};

/** Worst relative errors per family, printed at the end. */
const report: Record<string, Record<string, number>> = {};



describe.each(families)('%s', (family) => {
  const g = JSON.parse(readFileSync(join(goldens, `${family}.json`), 'utf8')) as Golden;
  const gt = readSafetensorsFile(join(goldens, `${family}.safetensors`));
  const errs: Record<string, number> = (report[family] = {});
  let model: EngineModel;

  const request = (seqs: NativeSequenceInput[]): NativeGenerateRequest => ({
    sequences: seqs,
    maxNewTokens: g.max_new_tokens,
    eosTokenIds: [g.eos_token_id],
    sampling: { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
    returnPromptLogits: true,
  });

  beforeAll(async () => {
    model = await EngineModel.load(join(fixtures, g.model_dir), { imageContextTokenId: g.image_context_token_id });
  });
  afterAll(() => {
    model?.dispose();
    const worst = Object.entries(errs)
      .map(([k, v]) => `${k} ${v.toExponential(2)}`)
      .join(', ');
    console.log(`${family} max relative error: ${worst}`);
  });

  test('raw ViT output (vit.wide)', async () => {
    const want = gt['vit.wide'];
    const got = await model.encodeVit(pixels.wide.data, g.images.wide.tiles);
    const e = relErr(got, want.data);
    errs.vit = e;
    expect(e).toBeLessThan(1e-5); // reached: ~1e-6
  });

  test.each(['wide', 'tall'])('vision embeddings (vision.%s)', async (key) => {
    const want = gt[`vision.${key}`];
    const got = await model.encodeImages(pixels[key].data, g.images[key].tiles);
    const e = relErr(got, want.data);
    errs.vision = Math.max(errs.vision ?? 0, e);
    expect(e).toBeLessThan(1e-5); // reached: ~1e-6
  });

  const single = g.cases.filter((c) => !c.samples);
  test.each(single.map((c) => [c.name, c] as const))('%s: prompt logits and greedy ids', async (_name, c) => {
    const [r] = await model.generate(request([goldenSequence(c as Sample)])).promise;
    const e = relErr(r.promptLogits!, gt[c.logits!].data);
    errs.logits = Math.max(errs.logits ?? 0, e);
    expect(e).toBeLessThan(1e-4); // target 1e-3; reached: ~1e-6
    expect(Array.from(r.tokenIds)).toEqual(c.generated_ids);
    const last = c.generated_ids![c.generated_ids!.length - 1];
    expect(r.finishReason).toBe(last === g.eos_token_id ? 'eos' : 'length');
  });

  test("the plain reference kernels (cpuKernels: 'plain') agree too", async () => {
    const plain = await EngineModel.load(join(fixtures, g.model_dir), {
      imageContextTokenId: g.image_context_token_id,
      cpuKernels: 'plain',
    });
    try {
      expect(plain.info().backendDetail).toMatch(/^cpu, plain kernels, \d+ threads?$/);
      expect(model.info().backendDetail).toMatch(/^cpu, (avx2\+fma|plain) kernels, \d+ threads?$/);
      const vit = await plain.encodeVit(pixels.wide.data, g.images.wide.tiles);
      expect(relErr(vit, gt['vit.wide'].data)).toBeLessThan(1e-5);
      for (const c of single) {
        const [r] = await plain.generate(request([goldenSequence(c as Sample)])).promise;
        const e = relErr(r.promptLogits!, gt[c.logits!].data);
        errs.logitsPlain = Math.max(errs.logitsPlain ?? 0, e);
        expect(e).toBeLessThan(1e-4);
        expect(Array.from(r.tokenIds)).toEqual(c.generated_ids);
      }
    } finally {
      plain.dispose();
    }
  });

  test('batch: together = goldens = one at a time', async () => {
    const batch = g.cases.find((c) => c.samples)!;
    const seqs = batch.samples!.map(goldenSequence);
    const together = await model.generate(request(seqs)).promise;
    for (let i = 0; i < seqs.length; i++) {
      expect(Array.from(together[i].tokenIds)).toEqual(batch.samples![i].generated_ids);
      const [alone] = await model.generate(request([seqs[i]])).promise;
      expect(Array.from(alone.tokenIds)).toEqual(Array.from(together[i].tokenIds));
      expect(Array.from(alone.promptLogits!)).toEqual(Array.from(together[i].promptLogits!));
    }
  });
});
