/**
 * Reads the PyTorch-made goldens in test/fixtures/goldens (see
 * test/fixtures/make_fixtures.py). Plain TS, independent of the native loader.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type StTensor, readSafetensorsFile } from './safetensors.js';

export const fixturesDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
export const goldensDir = join(fixturesDir, 'goldens');

export interface GoldenSample {
  question: string;
  images: string[];
  num_patches_list: number[];
  prompt: string;
  input_ids: number[];
  generated_ids: number[];
  response: string;
}

export interface GoldenCase extends Partial<GoldenSample> {
  name: string;
  history?: Array<[string, string]>;
  logits?: string;
  vision?: string[];
  samples?: GoldenSample[];
}

export interface ModelGolden {
  family: string;
  model_dir: string;
  num_image_token: number;
  eos_token_id: number;
  images: Record<string, { file: string; grid: [number, number]; tiles: number }>;
  cases: GoldenCase[];
}

/** Families with goldens present (empty until the generator's output is committed). */
export function goldenFamilies(): string[] {
  if (!existsSync(goldensDir)) return [];
  return readdirSync(goldensDir)
    .filter((f) => f.endsWith('.json') && !f.startsWith('tokenizer-'))
    .map((f) => f.slice(0, -5))
    .sort();
}

export function readModelGolden(family: string): ModelGolden {
  return JSON.parse(readFileSync(join(goldensDir, `${family}.json`), 'utf8')) as ModelGolden;
}

/** Every tensor of a safetensors file, as float32 (thin alias over the shared reader). */
export function readSafetensors(path: string): Record<string, StTensor> {
  return readSafetensorsFile(path);
}

let pixelCache: Record<string, StTensor> | undefined;

/** The golden pixel values of the named fixture images, concatenated in order ([T,3,S,S]). */
export function goldenPixels(names: readonly string[]): Float32Array {
  pixelCache ??= readSafetensors(join(goldensDir, 'pixels.safetensors'));
  const parts = names.map((n) => (pixelCache as Record<string, StTensor>)[n].data);
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** max |a − b| / max |b|: the error relative to the tensor's scale. */
export function relErr(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/** A golden sample as the engine's sequence input (its images' golden pixels, when it has any). */
export function goldenSequence(s: { input_ids: number[]; images: string[]; num_patches_list: number[] }): {
  inputIds: Int32Array;
  pixelValues?: Float32Array;
  tiles?: number;
} {
  const tiles = s.num_patches_list.reduce((a, b) => a + b, 0);
  return tiles > 0
    ? { inputIds: Int32Array.from(s.input_ids), pixelValues: goldenPixels(s.images), tiles }
    : { inputIds: Int32Array.from(s.input_ids) };
}

/** Every generated sample of a family's goldens: the single cases, then each batch's samples. */
export function goldenSamples(g: ModelGolden): GoldenSample[] {
  const out: GoldenSample[] = [];
  for (const c of g.cases) {
    if (c.samples) out.push(...c.samples);
    else if (c.input_ids && c.generated_ids) out.push(c as GoldenSample);
  }
  return out;
}

/**
 * Teacher forcing over the goldens: one sequence per prefix prompt + continuation[0..j) of
 * every sample (its prompt logits predict continuation[j]), with its images' golden pixels.
 */
export function teacherForcedSequences(samples: readonly GoldenSample[]): Array<{ inputIds: Int32Array; pixelValues?: Float32Array; tiles?: number }> {
  const out: Array<{ inputIds: Int32Array; pixelValues?: Float32Array; tiles?: number }> = [];
  for (const s of samples) {
    const tiles = s.num_patches_list.reduce((a, b) => a + b, 0);
    const pixelValues = tiles > 0 ? goldenPixels(s.images) : undefined;
    for (let j = 0; j < s.generated_ids.length; j++) {
      const inputIds = Int32Array.from([...s.input_ids, ...s.generated_ids.slice(0, j)]);
      out.push(pixelValues ? { inputIds, pixelValues, tiles } : { inputIds });
    }
  }
  return out;
}
