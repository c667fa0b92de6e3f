/**
 * Reading the Hugging Face tokenizer side files (tokenizer_config.json,
 * special_tokens_map.json, added_tokens.json) the way transformers 4.37's
 * `from_pretrained` + `PreTrainedTokenizer.__init__` combine them for a slow
 * tokenizer.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InternVLError } from '../errors.js';
import type { AddedToken } from './addedTokens.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export function tokenizerError(file: string, problem: string, cause?: unknown): InternVLError {
  return new InternVLError('ERR_TOKENIZER', `${file}: ${problem}`, cause === undefined ? undefined : { cause });
}

/** Reads a JSON file; undefined when absent; ERR_TOKENIZER naming the file when unreadable or invalid. */
export function readJsonFile(path: string): Json | undefined {
  if (!existsSync(path)) return undefined;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw tokenizerError(path, `cannot read: ${(e as Error).message}`, e);
  }
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw tokenizerError(path, `invalid JSON: ${(e as Error).message}`, e);
  }
}

export function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A token given as a string or as an AddedToken dict ({content, lstrip, ...}). */
export interface TokenSpec {
  content: string;
  lstrip?: boolean;
  rstrip?: boolean;
  singleWord?: boolean;
  normalized?: boolean;
  special?: boolean;
}

export function tokenSpec(v: Json | undefined, file: string, key: string): TokenSpec | null | undefined {
  if (v === undefined) return undefined;
  if (v === null) return null;
  if (typeof v === 'string') return { content: v };
  if (isObject(v) && typeof v.content === 'string') {
    const b = (k: string): boolean | undefined => (typeof v[k] === 'boolean' ? (v[k] as boolean) : undefined);
    return {
      content: v.content,
      lstrip: b('lstrip'),
      rstrip: b('rstrip'),
      singleWord: b('single_word'),
      normalized: b('normalized'),
      special: b('special'),
    };
  }
  throw tokenizerError(file, `${key} must be a string, an AddedToken object or null`);
}

export const SPECIAL_ATTRIBUTES = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;
export type SpecialAttribute = (typeof SPECIAL_ATTRIBUTES)[number];

export interface SideFiles {
  /** tokenizer_config.json (possibly merged with special_tokens_map.json in the legacy layout). */
  config: JsonObject;
  configFile: string;
  /** Added tokens declared by the files, by id. */
  addedTokens: Map<number, AddedToken>;
  /** bos/eos/... as declared (undefined: not declared, null: declared null). */
  special: Partial<Record<SpecialAttribute, TokenSpec | null>>;
  additionalSpecial: TokenSpec[];
}

function addedTokenFrom(id: number, t: TokenSpec, defaults: { special: boolean }): AddedToken {
  const special = t.special ?? defaults.special;
  return {
    id,
    content: t.content,
    lstrip: t.lstrip ?? false,
    rstrip: t.rstrip ?? false,
    singleWord: t.singleWord ?? false,
    normalized: t.normalized ?? !special,
    special,
  };
}

/**
 * Loads the side files. With `added_tokens_decoder` in tokenizer_config.json
 * (transformers ≥ 4.34 layout) that is the whole truth; otherwise the legacy
 * layout: special_tokens_map.json overrides the config's special tokens and
 * added_tokens.json lists extra tokens.
 */
export function readSideFiles(dir: string): SideFiles {
  const configFile = join(dir, 'tokenizer_config.json');
  const raw = readJsonFile(configFile);
  if (raw !== undefined && !isObject(raw)) throw tokenizerError(configFile, 'expected a JSON object');
  const config: JsonObject = { ...(raw ?? {}) };
  const addedTokens = new Map<number, AddedToken>();

  const atd = config.added_tokens_decoder;
  if (atd !== undefined) {
    if (!isObject(atd)) throw tokenizerError(configFile, 'added_tokens_decoder must be an object');
    for (const [k, v] of Object.entries(atd)) {
      const id = Number(k);
      if (!Number.isInteger(id) || id < 0) throw tokenizerError(configFile, `added_tokens_decoder key ${JSON.stringify(k)} is not an id`);
      const t = tokenSpec(v, configFile, `added_tokens_decoder[${k}]`);
      if (!t) throw tokenizerError(configFile, `added_tokens_decoder[${k}] is null`);
      // AddedToken(**dict): special defaults to False, normalized to not special.
      addedTokens.set(id, addedTokenFrom(id, t, { special: false }));
    }
  } else {
    const mapFile = join(dir, 'special_tokens_map.json');
    const map = readJsonFile(mapFile);
    if (map !== undefined) {
      if (!isObject(map)) throw tokenizerError(mapFile, 'expected a JSON object');
      for (const [k, v] of Object.entries(map)) {
        if (k === 'additional_special_tokens') {
          const prev = Array.isArray(config[k]) ? (config[k] as Json[]) : [];
          const merged = [...prev];
          for (const t of Array.isArray(v) ? v : []) {
            const c = typeof t === 'string' ? t : isObject(t) ? t.content : undefined;
            if (!merged.some((m) => (typeof m === 'string' ? m : isObject(m) ? m.content : undefined) === c)) merged.push(t);
          }
          config[k] = merged;
        } else {
          config[k] = v;
        }
      }
    }
    const addedFile = join(dir, 'added_tokens.json');
    const added = readJsonFile(addedFile);
    if (added !== undefined) {
      if (!isObject(added)) throw tokenizerError(addedFile, 'expected a JSON object of token -> id');
      const specialContents = new Set<string>();
      for (const a of SPECIAL_ATTRIBUTES) {
        const s = tokenSpec(config[a], configFile, a);
        if (s) specialContents.add(s.content);
      }
      for (const t of Array.isArray(config.additional_special_tokens) ? config.additional_special_tokens : []) {
        const s = tokenSpec(t, configFile, 'additional_special_tokens');
        if (s) specialContents.add(s.content);
      }
      for (const [content, id] of Object.entries(added)) {
        if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
          throw tokenizerError(addedFile, `id of ${JSON.stringify(content)} is not a non-negative integer`);
        }
        const special = specialContents.has(content);
        addedTokens.set(id, { id, content, lstrip: false, rstrip: false, singleWord: false, normalized: !special, special });
      }
    }
  }

  const special: SideFiles['special'] = {};
  for (const a of SPECIAL_ATTRIBUTES) {
    const s = tokenSpec(config[a], configFile, a);
    if (s !== undefined) special[a] = s;
  }
  const additionalSpecial: TokenSpec[] = [];
  const ast = config.additional_special_tokens;
  if (ast !== undefined && ast !== null) {
    if (!Array.isArray(ast)) throw tokenizerError(configFile, 'additional_special_tokens must be a list');
    for (const t of ast) {
      const s = tokenSpec(t, configFile, 'additional_special_tokens');
      if (s) additionalSpecial.push(s);
    }
  }
  return { config, configFile, addedTokens, special, additionalSpecial };
}

export function configBool(config: JsonObject, key: string, dflt: boolean): boolean {
  const v = config[key];
  return typeof v === 'boolean' ? v : dflt;
}
