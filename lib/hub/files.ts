/**
 * Which files of a Hub repo the runtime needs, and whether a cached snapshot has them.
 *
 * A released InternVL2 repo also holds the Python modeling code, README images, sometimes
 * PyTorch `.bin` weights: none of that is read here, so none of it is downloaded.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InternVLError } from '../errors.js';
import { readable } from './cache.js';

/** 'model': everything InternVL.load reads; 'tokenizer': config + tokenizer files (`internvl tokenize`). */
export type FileSet = 'model' | 'tokenizer';

export const CONFIG_FILES = ['config.json', 'generation_config.json'] as const;
export const TOKENIZER_FILES = [
  'tokenizer.model',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
] as const;
export const WEIGHTS_INDEX = 'model.safetensors.index.json';

const wanted = new Set<string>([...CONFIG_FILES, ...TOKENIZER_FILES]);

/** The repo paths to fetch for `set`, out of the repo's file list; explains repos the runtime cannot use. */
export function selectFiles(repo: string, paths: readonly string[], set: FileSet): string[] {
  const top = paths.filter((p) => !p.includes('/'));
  if (!top.includes('config.json')) {
    throw new InternVLError('ERR_CHECKPOINT', `${repo} has no config.json: it is not a model checkpoint this runtime can load`);
  }
  const chosen = top.filter((p) => wanted.has(p));
  if (set === 'model') {
    const weights = top.filter((p) => p.endsWith('.safetensors'));
    if (weights.length === 0) {
      const bins = top.filter((p) => p.endsWith('.bin'));
      throw new InternVLError(
        'ERR_CHECKPOINT',
        `${repo} has no .safetensors weights${bins.length > 0 ? ` (only PyTorch ${bins[0]}${bins.length > 1 ? ', ...' : ''})` : ''}; this runtime reads safetensors only`,
      );
    }
    chosen.push(...weights);
    if (top.includes(WEIGHTS_INDEX)) chosen.push(WEIGHTS_INDEX);
  }
  return chosen.sort();
}

async function weightFilesMissing(dir: string): Promise<string[]> {
  if (await readable(join(dir, 'model.safetensors'))) return [];
  if (!(await readable(join(dir, WEIGHTS_INDEX)))) return ['model.safetensors or model.safetensors.index.json'];
  try {
    const index = JSON.parse(await readFile(join(dir, WEIGHTS_INDEX), 'utf8')) as { weight_map?: Record<string, string> };
    const shards = [...new Set(Object.values(index.weight_map ?? {}))].filter((s) => typeof s === 'string' && !s.includes('/'));
    const present = await Promise.all(shards.map((s) => readable(join(dir, s))));
    return shards.filter((_, i) => !present[i]);
  } catch {
    return []; // an unreadable index is the loader's to report (ERR_CHECKPOINT), not a cache miss
  }
}

/**
 * What a cached snapshot lacks for `set` (empty when usable offline): config.json, a
 * tokenizer (tokenizer.model, tokenizer.json, or vocab.json + merges.txt) and, for a
 * model, model.safetensors or every shard the index names.
 */
export async function missingFiles(dir: string, set: FileSet): Promise<string[]> {
  const missing: string[] = [];
  if (!(await readable(join(dir, 'config.json')))) missing.push('config.json');
  const [sp, json, vocab, merges] = await Promise.all(['tokenizer.model', 'tokenizer.json', 'vocab.json', 'merges.txt'].map((f) => readable(join(dir, f))));
  if (!sp && !json && !(vocab && merges)) missing.push('tokenizer.model, tokenizer.json or vocab.json + merges.txt');
  if (set === 'model') missing.push(...(await weightFilesMissing(dir)));
  return missing;
}
