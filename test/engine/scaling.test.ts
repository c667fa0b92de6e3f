/**
 * Paths the fixture goldens do not reach, against goldens made by
 * test/engine/goldens/make_engine_goldens.py (PyTorch, the fixture script's
 * original-math reference, cross-checked with transformers 5.17):
 *   - position-embedding bicubic resize (force_image_size 84 / 168 on a 112 checkpoint),
 *   - Phi3 su-RoPE switching from short to long factors in the middle of decoding,
 *   - InternLM2 dynamic NTK past max_position_embeddings (from decode, and from the prompt on).
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import type { NativeGenerateRequest, NativeSequenceInput } from '../../lib/nativeTypes.js';
import { relErr } from '../helpers/goldens.js';
import { readSafetensorsFile } from '../helpers/safetensors.js';
import { tempDir } from './tinyModel.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, '..', 'fixtures');

interface ExtraCase {
  kind: 'vit_resize' | 'phi3_cross' | 'ntk_dynamic';
  name: string;
  family: string;
  overrides: Record<string, number>;
  tiles?: number;
  vit?: string;
  vision?: string;
  input_ids?: number[];
  images?: string[];
  num_patches_list?: number[];
  eos_token_id?: number;
  image_context_token_id?: number;
  generated_ids?: number[];
  logits?: string;
}

const golden = JSON.parse(readFileSync(join(here, 'goldens', 'engine-goldens.json'), 'utf8')) as { cases: ExtraCase[] };
const gt = readSafetensorsFile(join(here, 'goldens', 'engine-goldens.safetensors'));
const pixels = readSafetensorsFile(join(fixtures, 'goldens', 'pixels.safetensors'));
const families = Object.fromEntries(
  ['tiny-yi', 'tiny-internlm2', 'tiny-qwen2', 'tiny-phi3'].map((f) => [
    f,
    JSON.parse(readFileSync(join(fixtures, 'goldens', `${f}.json`), 'utf8')) as { image_context_token_id: number },
  ]),
);


/** The rule in make_engine_goldens.py: 2 tiles cut from the fixture "wide" tiles [4,3,112,112]. */
function resizePixels(tile: number): Float32Array {
  const w = pixels.wide.data;
  const at = (t: number, c: number, y: number, x: number) => w[((t * 3 + c) * 112 + y) * 112 + x];
  const out = new Float32Array(2 * 3 * tile * tile);
  for (let j = 0; j < 2; j++) {
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < tile; y++) {
        for (let x = 0; x < tile; x++) {
          const src = tile === 84 ? j : (j + 2 * Math.floor(y / 84) + Math.floor(x / 84)) % 4;
          out[((j * 3 + c) * tile + y) * tile + x] = at(src, c, y % 84, x % 84);
        }
      }
    }
  }
  return out;
}

let root: string;
beforeAll(() => {
  root = tempDir('ivl-scaling-');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A copy of a fixture model with config.json fields overridden ("a.b.c" paths). */
async function loadWith(family: string, overrides: Record<string, number>): Promise<EngineModel> {
  const dir = join(root, `${family}-${Object.entries(overrides).flat().join('-')}`);
  cpSync(join(fixtures, 'models', family), dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  for (const [path, value] of Object.entries(overrides)) {
    const keys = path.split('.');
    let node = cfg;
    for (const k of keys.slice(0, -1)) node = node[k];
    node[keys[keys.length - 1]] = value;
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  return EngineModel.load(dir, { imageContextTokenId: families[family].image_context_token_id, threads: 2 });
}

describe('position-embedding resize (bicubic, as InternVisionEmbeddings._get_pos_embed)', () => {
  test.each(golden.cases.filter((c) => c.kind === 'vit_resize').map((c) => [c.name, c] as const))('%s', async (_n, c) => {
    const model = await loadWith(c.family, c.overrides);
    try {
      const tile = c.overrides.force_image_size;
      const g = tile / 14;
      const info = model.info();
      expect(info.imageSize).toBe(tile);
      expect(info.vitTokens).toBe(1 + g * g);
      expect(info.numImageToken).toBe((g / 2) * (g / 2));
      const px = resizePixels(tile);
      const vit = await model.encodeVit(px, 2);
      expect(relErr(vit, gt[c.vit!].data)).toBeLessThan(1e-5);
      const emb = await model.encodeImages(px, 2);
      expect(relErr(emb, gt[c.vision!].data)).toBeLessThan(1e-5);
    } finally {
      model.dispose();
    }
  });
});

describe('RoPE scaling chosen per forward call', () => {
  const request = (c: ExtraCase, seqs: NativeSequenceInput[]): NativeGenerateRequest => ({
    sequences: seqs,
    maxNewTokens: 24,
    eosTokenIds: [c.eos_token_id!],
    sampling: { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
    returnPromptLogits: true,
  });
  const seqOf = (c: ExtraCase): NativeSequenceInput => {
    const tiles = (c.num_patches_list ?? []).reduce((a, b) => a + b, 0);
    if (!tiles) return { inputIds: Int32Array.from(c.input_ids!) };
    const parts = c.images!.map((k) => pixels[k].data);
    const px = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    parts.reduce((o, p) => (px.set(p, o), o + p.length), 0);
    return { inputIds: Int32Array.from(c.input_ids!), pixelValues: px, tiles };
  };

  test.each(golden.cases.filter((c) => c.kind !== 'vit_resize').map((c) => [c.name, c] as const))('%s', async (_n, c) => {
    const model = await loadWith(c.family, c.overrides);
    try {
      const [r] = await model.generate(request(c, [seqOf(c)])).promise;
      expect(relErr(r.promptLogits!, gt[c.logits!].data)).toBeLessThan(1e-4);
      expect(Array.from(r.tokenIds)).toEqual(c.generated_ids);
      // next to a short sequence, the crossing one still decodes as it does alone (per-sequence tables)
      const short: NativeSequenceInput = { inputIds: Int32Array.from(c.input_ids!.slice(0, 5)) };
      const [withOther] = await model.generate(request(c, [seqOf(c), short])).promise;
      expect(Array.from(withOther.tokenIds)).toEqual(c.generated_ids);
    } finally {
      model.dispose();
    }
  });
});
