/**
 * The tokenizer of a checkpoint directory, with exact parity to the reference
 * Python tokenizers InternVL2 uses (transformers 4.37-era slow tokenizers):
 *
 * | files | tokenizer_class | implementation |
 * |---|---|---|
 * | tokenizer.model | LlamaTokenizer (Phi-3, Yi, Llama-2), default | SentencePiece BPE + LlamaTokenizer rules (`legacy`, add_bos/add_eos) |
 * | tokenizer.model | InternLM2Tokenizer | SentencePiece BPE + InternLM2Tokenizer rules |
 * | vocab.json + merges.txt (or tokenizer.json) | Qwen2Tokenizer | byte-level BPE, NFC, Qwen2 regex, no BOS |
 * | tokenizer.json | anything else (PreTrainedTokenizerFast, Llama-3) | the tokenizer.json pipeline (normalizer, pre-tokenizer, BPE, post-processor) |
 *
 * Pure TypeScript, no runtime dependency. Malformed files fail with
 * InternVLError('ERR_TOKENIZER') naming the file and the problem.
 */
import { existsSync, readFileSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InternVLError, invalidArg } from '../errors.js';
import { ByteLevelBPE } from './byteLevel.js';
import { createDecodeStream as makeDecodeStream, type DecodeStream } from './decodeStream.js';
import { ProtobufError } from './protobuf.js';
import { SentencePieceProcessor } from './sentencepiece.js';
import { parseSentencePieceModel, type SentencePieceModelProto } from './sentencepieceModel.js';
import { isObject, readJsonFile, readSideFiles, tokenizerError, type JsonObject } from './tokenizerConfig.js';
import { FastTokenizer } from './tokenizerFast.js';
import { InternLM2SlowTokenizer, LlamaSlowTokenizer, Qwen2SlowTokenizer, type SlowTokenizer } from './tokenizerSlow.js';

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Add BOS/EOS as the reference tokenizer does (default true). */
  addSpecialTokens?: boolean;
}
/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special tokens (default false). */
  skipSpecialTokens?: boolean;
}

/** A tokenizer loaded from a checkpoint's files, exact to the reference implementation. */
export interface Tokenizer {
  readonly kind: 'sentencepiece' | 'byte-level-bpe';
  /** Base vocabulary + added tokens (Python's len(tokenizer)). */
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  encode(text: string, options?: EncodeOptions): number[];
  /** Token strings, no special tokens added. */
  tokenize(text: string): string[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** Whether decode({skipSpecialTokens: true}) drops this id. */
  isSpecial(id: number): boolean;
  /**
   * Incremental decoding: push() returns only text no later token can change (never half a
   * character), flush() the rest; all chunks joined equal decode(ids). With special tokens kept,
   * the slow Llama (legacy=true) and InternLM2 decoders insert a space before the run of text that
   * precedes a special token, so there the text after the last special token is released only
   * when the next special token (or flush) arrives. Cost is linear in the number of tokens.
   */
  createDecodeStream(options?: DecodeOptions): { push(id: number): string; flush(): string };
}

interface Backend {
  readonly kind: 'sentencepiece' | 'byte-level-bpe';
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly cleansSpaces: boolean;
  finalPrefix?(ids: readonly number[], skipSpecialTokens: boolean): number;
  isPlain?(id: number): boolean;
  encode(text: string, addSpecialTokens: boolean): number[];
  tokenize(text: string): string[];
  decode(ids: readonly number[], skipSpecialTokens: boolean): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

function checkText(text: unknown, name: string): asserts text is string {
  if (typeof text !== 'string') throw invalidArg(name, 'a string', text);
}

function checkOptions<T extends object>(options: unknown, name: string, keys: readonly (keyof T & string)[]): T {
  if (options === undefined) return {} as T;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw invalidArg(name, 'an object', options);
  for (const k of keys) {
    const v = (options as Record<string, unknown>)[k];
    if (v !== undefined && typeof v !== 'boolean') throw invalidArg(`${name}.${k}`, 'a boolean', v);
  }
  return options as T;
}

/**
 * The backends signal text they cannot map to ids (a vocabulary without a byte-level
 * symbol, a merge whose result is not in the vocabulary, no unk token) with RangeError;
 * callers get ERR_TOKENIZER, as for any other defect of the tokenizer files.
 */
function typed<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RangeError) throw new InternVLError('ERR_TOKENIZER', `cannot ${what} with this tokenizer: ${e.message}`, { cause: e });
    throw e;
  }
}

class TokenizerImpl implements Tokenizer {
  constructor(
    private readonly backend: Backend,
    private readonly specialCheck: (id: number) => boolean,
  ) {}

  get kind(): 'sentencepiece' | 'byte-level-bpe' {
    return this.backend.kind;
  }
  get vocabSize(): number {
    return this.backend.vocabSize;
  }
  get bosTokenId(): number | null {
    return this.backend.bosTokenId;
  }
  get eosTokenId(): number | null {
    return this.backend.eosTokenId;
  }

  encode(text: string, options?: EncodeOptions): number[] {
    checkText(text, 'text');
    const o = checkOptions<EncodeOptions>(options, 'options', ['addSpecialTokens']);
    return typed('encode this text', () => this.backend.encode(text, o.addSpecialTokens ?? true));
  }

  tokenize(text: string): string[] {
    checkText(text, 'text');
    return typed('tokenize this text', () => this.backend.tokenize(text));
  }

  decode(ids: readonly number[], options?: DecodeOptions): string {
    this.checkIds(ids);
    const o = checkOptions<DecodeOptions>(options, 'options', ['skipSpecialTokens']);
    return typed('decode these ids', () => this.backend.decode(ids, o.skipSpecialTokens ?? false));
  }

  tokenToId(token: string): number | undefined {
    checkText(token, 'token');
    return this.backend.tokenToId(token);
  }

  idToToken(id: number): string | undefined {
    if (!Number.isInteger(id)) return undefined;
    return this.backend.idToToken(id);
  }

  isSpecial(id: number): boolean {
    return this.specialCheck(id);
  }

  createDecodeStream(options?: DecodeOptions): DecodeStream {
    const o = checkOptions<DecodeOptions>(options, 'options', ['skipSpecialTokens']);
    const skip = o.skipSpecialTokens ?? false;
    const backend = this.backend;
    const stream = makeDecodeStream({
      decode: (ids) => backend.decode(ids, skip),
      cleansSpaces: backend.cleansSpaces,
      finalPrefix: backend.finalPrefix ? (ids) => backend.finalPrefix!(ids, skip) : undefined,
      isPlain: backend.isPlain ? (id) => backend.isPlain!(id) : undefined,
    });
    return {
      push: (id: number): string => {
        this.checkId(id, 'id');
        return typed('decode these ids', () => stream.push(id));
      },
      flush: () => typed('decode these ids', () => stream.flush()),
    };
  }

  private checkId(id: unknown, name: string): void {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || this.backend.idToToken(id) === undefined) {
      throw invalidArg(name, `an integer token id in the vocabulary (0..${this.backend.vocabSize - 1})`, id);
    }
  }

  private checkIds(ids: unknown): void {
    if (!Array.isArray(ids)) throw invalidArg('ids', 'an array of token ids', ids);
    for (let i = 0; i < ids.length; i++) this.checkId(ids[i], `ids[${i}]`);
  }
}

function slowBackend(t: SlowTokenizer): TokenizerImpl {
  return new TokenizerImpl(t, (id) => t.allSpecialIds.has(id));
}

function parseSpModel(file: string, bytes: Uint8Array): SentencePieceModelProto {
  try {
    return parseSentencePieceModel(bytes);
  } catch (e) {
    const why = e instanceof ProtobufError ? e.message : String(e);
    throw tokenizerError(file, `not a valid SentencePiece model (${why})`, e);
  }
}

function makeSp(file: string, proto: SentencePieceModelProto, addDummyPrefix?: boolean): SentencePieceProcessor {
  try {
    return new SentencePieceProcessor(proto, addDummyPrefix === undefined ? {} : { addDummyPrefix });
  } catch (e) {
    throw tokenizerError(file, (e as Error).message, e);
  }
}

function tokenizerClass(config: JsonObject): string {
  const c = typeof config.tokenizer_class === 'string' ? config.tokenizer_class : '';
  return c.endsWith('Fast') ? c.slice(0, -4) : c;
}

/** Reads vocab.json + merges.txt (the slow GPT-2 / Qwen2 files). */
function readVocabMerges(dir: string): ByteLevelBPE {
  const vocabFile = join(dir, 'vocab.json');
  const mergesFile = join(dir, 'merges.txt');
  const vocabJson = readJsonFile(vocabFile);
  if (!isObject(vocabJson)) throw tokenizerError(vocabFile, 'expected a JSON object of token -> id');
  const vocab = new Map<string, number>();
  for (const [t, id] of Object.entries(vocabJson)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw tokenizerError(vocabFile, `id of ${JSON.stringify(t)} is not a non-negative integer`);
    vocab.set(t, id);
  }
  if (!existsSync(mergesFile)) throw tokenizerError(mergesFile, 'missing (vocab.json needs merges.txt)');
  const lines = readFileSync(mergesFile, 'utf8').split('\n');
  const merges: Array<[string, string]> = [];
  lines.forEach((raw, i) => {
    // Python: line.strip(); skip "#version" header and empty lines; tuple(line.split()).
    const line = raw.trim();
    if ((i === 0 && line.startsWith('#version:')) || !line) return;
    const parts = line.split(/\s+/);
    if (parts.length !== 2) throw tokenizerError(mergesFile, `line ${i + 1} is not a pair of tokens`);
    merges.push([parts[0], parts[1]]);
  });
  return new ByteLevelBPE(vocab, merges);
}

/** vocab + merges of a tokenizer.json BPE model (for the slow Qwen2 class when only tokenizer.json ships). */
function bpeFromTokenizerJson(file: string, json: JsonObject): ByteLevelBPE {
  const model = json.model;
  if (!isObject(model) || !isObject(model.vocab) || !Array.isArray(model.merges)) {
    throw tokenizerError(file, 'model.vocab / model.merges missing');
  }
  const vocab = new Map<string, number>();
  for (const [t, id] of Object.entries(model.vocab)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw tokenizerError(file, `vocab id of ${JSON.stringify(t)} is not a non-negative integer`);
    vocab.set(t, id);
  }
  const merges = model.merges.map((m, i): [string, string] => {
    if (typeof m === 'string') {
      const k = m.indexOf(' ', 1);
      if (k > 0) return [m.slice(0, k), m.slice(k + 1)];
    } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      return [m[0], m[1]];
    }
    throw tokenizerError(file, `merge ${i} is malformed`);
  });
  return new ByteLevelBPE(vocab, merges);
}

/** Builds the tokenizer from a directory's files (already known to exist where needed). */
function build(dir: string, spBytes: Uint8Array | null): Tokenizer {
  const side = readSideFiles(dir);
  const cls = tokenizerClass(side.config);
  const spFile = join(dir, 'tokenizer.model');
  const jsonFile = join(dir, 'tokenizer.json');
  const hasVocabMerges = existsSync(join(dir, 'vocab.json'));
  const hasJson = existsSync(jsonFile);

  if (spBytes && cls !== 'Qwen2Tokenizer' && !(cls === 'PreTrainedTokenizer' && hasJson)) {
    const proto = parseSpModel(spFile, spBytes);
    if (cls === 'InternLM2Tokenizer') return slowBackend(new InternLM2SlowTokenizer(makeSp(spFile, proto), side));
    // LlamaTokenizer with legacy=false loads the model with add_dummy_prefix turned off.
    const legacy = typeof side.config.legacy === 'boolean' ? side.config.legacy : true;
    return slowBackend(new LlamaSlowTokenizer(makeSp(spFile, proto, legacy ? undefined : false), side));
  }
  if (cls === 'Qwen2Tokenizer' || (hasVocabMerges && !hasJson)) {
    if (hasVocabMerges) return slowBackend(new Qwen2SlowTokenizer(readVocabMerges(dir), side));
    const json = readJsonFile(jsonFile);
    if (!isObject(json)) throw tokenizerError(jsonFile, 'expected a JSON object');
    return slowBackend(new Qwen2SlowTokenizer(bpeFromTokenizerJson(jsonFile, json), side));
  }
  if (hasJson) {
    const json = readJsonFile(jsonFile);
    if (!isObject(json)) throw tokenizerError(jsonFile, 'expected a JSON object');
    const fast = new FastTokenizer(json, jsonFile, side.config);
    return new TokenizerImpl(fast, (id) => fast.isSpecial(id));
  }
  throw new InternVLError(
    'ERR_TOKENIZER',
    `${dir}: no tokenizer files found (expected tokenizer.model, tokenizer.json, or vocab.json + merges.txt)`,
  );
}

function checkDir(dir: unknown): asserts dir is string {
  if (typeof dir !== 'string' || dir.length === 0) throw invalidArg('dir', 'a non-empty directory path', dir);
}

/** Loads the tokenizer of a checkpoint directory. */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  checkDir(dir);
  const spFile = join(dir, 'tokenizer.model');
  let spBytes: Uint8Array | null = null;
  try {
    await access(spFile);
    spBytes = await readFile(spFile);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw tokenizerError(spFile, `cannot read: ${(e as Error).message}`, e);
  }
  return build(dir, spBytes);
}

/** Synchronous {@link loadTokenizer}. */
export function loadTokenizerSync(dir: string): Tokenizer {
  checkDir(dir);
  const spFile = join(dir, 'tokenizer.model');
  let spBytes: Uint8Array | null = null;
  if (existsSync(spFile)) {
    try {
      spBytes = readFileSync(spFile);
    } catch (e) {
      throw tokenizerError(spFile, `cannot read: ${(e as Error).message}`, e);
    }
  }
  return build(dir, spBytes);
}
