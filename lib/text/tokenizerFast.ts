/**
 * A `tokenizer.json` (Hugging Face `tokenizers`) byte-level BPE pipeline, as
 * `PreTrainedTokenizerFast` runs it: added tokens split first, then per chunk
 * normalizer → pre-tokenizer → BPE model; the post-processor adds special
 * tokens; decode goes through the ByteLevel decoder. Only the components used
 * by byte-level BPE checkpoints are supported; anything else is rejected with
 * ERR_TOKENIZER rather than silently mis-tokenized.
 */
import { splitFast, type AddedToken } from './addedTokens.js';
import {
  ByteLevelBPE,
  byteLevelBytes,
  byteLevelEncode,
  compilePattern,
  findAll,
  GPT2_PATTERN,
  splitIsolated,
} from './byteLevel.js';
import { assertNoCatastrophicBacktracking } from './regexProbe.js';
import { cleanUpTokenization } from './tokenizerSlow.js';
import { configBool, isObject, tokenizerError, type Json, type JsonObject } from './tokenizerConfig.js';

type Normalize = (s: string) => string;
type PreTokenize = (pieces: Array<{ text: string; bytes: boolean }>) => Array<{ text: string; bytes: boolean }>;

function buildNormalizer(n: Json | undefined, file: string): Normalize {
  if (n === undefined || n === null) return (s) => s;
  if (!isObject(n)) throw tokenizerError(file, 'normalizer must be an object or null');
  switch (n.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = n.type;
      return (s) => s.normalize(form);
    }
    case 'Lowercase':
      return (s) => s.toLowerCase();
    case 'Sequence': {
      const parts = (Array.isArray(n.normalizers) ? n.normalizers : []).map((x) => buildNormalizer(x, file));
      return (s) => parts.reduce((acc, f) => f(acc), s);
    }
    default:
      throw tokenizerError(file, `normalizer type ${JSON.stringify(n.type)} is not supported`);
  }
}

function patternOf(p: Json | undefined, file: string): RegExp {
  if (isObject(p) && typeof p.Regex === 'string') {
    let re: RegExp;
    try {
      re = compilePattern(p.Regex);
    } catch (e) {
      throw tokenizerError(file, `Split pattern is not a regular expression JavaScript can run: ${(e as Error).message}`, e);
    }
    try {
      assertNoCatastrophicBacktracking(re);
    } catch (e) {
      throw tokenizerError(file, `Split pattern ${JSON.stringify(p.Regex)} is refused: ${(e as Error).message}`, e);
    }
    return re;
  }
  if (isObject(p) && typeof p.String === 'string') {
    return new RegExp(p.String.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gu');
  }
  throw tokenizerError(file, 'Split pre-tokenizer needs a Regex or String pattern');
}

function buildPreTokenizer(p: Json | undefined, file: string): PreTokenize {
  if (p === undefined || p === null) return (x) => x;
  if (!isObject(p)) throw tokenizerError(file, 'pre_tokenizer must be an object or null');
  switch (p.type) {
    case 'Sequence': {
      const parts = (Array.isArray(p.pretokenizers) ? p.pretokenizers : []).map((x) => buildPreTokenizer(x, file));
      return (x) => parts.reduce((acc, f) => f(acc), x);
    }
    case 'Split': {
      const re = patternOf(p.pattern, file);
      if (p.invert === true) throw tokenizerError(file, 'Split with invert=true is not supported');
      const behavior = p.behavior ?? 'Isolated';
      if (behavior !== 'Isolated' && behavior !== 'Removed') {
        throw tokenizerError(file, `Split behavior ${JSON.stringify(behavior)} is not supported`);
      }
      return (pieces) =>
        pieces.flatMap((piece) => {
          const parts = behavior === 'Isolated' ? splitIsolated(piece.text, re) : splitRemoved(piece.text, re);
          return parts.map((text) => ({ text, bytes: piece.bytes }));
        });
    }
    case 'ByteLevel': {
      const addPrefixSpace = p.add_prefix_space === true;
      const useRegex = p.use_regex !== false;
      const re = compilePattern(GPT2_PATTERN);
      return (pieces) =>
        pieces.flatMap((piece) => {
          let text = piece.text;
          // tokenizers prepends the space to every split that lacks one.
          if (addPrefixSpace && !text.startsWith(' ')) text = ' ' + text;
          const parts = useRegex ? findAllWithGaps(text, re) : [text];
          return parts.map((t) => ({ text: byteLevelEncode(t), bytes: true }));
        });
    }
    default:
      throw tokenizerError(file, `pre_tokenizer type ${JSON.stringify(p.type)} is not supported`);
  }
}

function splitRemoved(text: string, re: RegExp): string[] {
  const out: string[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index! > last) out.push(text.slice(last, m.index));
    last = m.index! + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function findAllWithGaps(text: string, re: RegExp): string[] {
  // The GPT-2 regex covers every character, so matches alone are the split.
  const parts = findAll(text, re);
  return parts.length ? parts : text ? [text] : [];
}

interface TemplatePiece {
  special?: string;
  sequence?: boolean;
}

export class FastTokenizer {
  readonly kind = 'byte-level-bpe' as const;
  private readonly bpe: ByteLevelBPE;
  private readonly idToTok = new Map<number, string>();
  private readonly added: AddedToken[];
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly normalize: Normalize;
  private readonly preTokenize: PreTokenize;
  private readonly template: TemplatePiece[] | null;
  private readonly specialIdsFromTemplate = new Map<string, number>();
  private readonly byteLevelDecoder: boolean;
  readonly cleanUpTokenizationSpaces: boolean;
  readonly baseVocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  private readonly addBos: boolean | undefined;
  private readonly addEos: boolean | undefined;
  private static readonly utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

  constructor(json: JsonObject, file: string, config: JsonObject) {
    const model = json.model;
    if (!isObject(model)) throw tokenizerError(file, 'missing "model"');
    if (model.type !== undefined && model.type !== 'BPE') {
      throw tokenizerError(file, `model type ${JSON.stringify(model.type)} is not supported (only byte-level BPE)`);
    }
    if (!isObject(model.vocab)) throw tokenizerError(file, 'model.vocab must be an object of token -> id');
    if (!Array.isArray(model.merges)) throw tokenizerError(file, 'model.merges is missing');
    if (model.byte_fallback === true) throw tokenizerError(file, 'BPE byte_fallback is not supported');
    if (model.continuing_subword_prefix || model.end_of_word_suffix) {
      throw tokenizerError(file, 'BPE continuing_subword_prefix / end_of_word_suffix are not supported');
    }
    const vocab = new Map<string, number>();
    for (const [t, id] of Object.entries(model.vocab)) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
        throw tokenizerError(file, `vocab id of ${JSON.stringify(t)} is not a non-negative integer`);
      }
      vocab.set(t, id);
      this.idToTok.set(id, t);
    }
    const merges = model.merges.map((m, i): [string, string] => {
      if (typeof m === 'string') {
        const k = m.indexOf(' ', 1);
        if (k < 0) throw tokenizerError(file, `merge ${i} ${JSON.stringify(m)} is not "a b"`);
        return [m.slice(0, k), m.slice(k + 1)];
      }
      if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
      throw tokenizerError(file, `merge ${i} is malformed`);
    });
    this.bpe = new ByteLevelBPE(vocab, merges, model.ignore_merges === true);
    this.baseVocabSize = vocab.size;

    const addedList = Array.isArray(json.added_tokens) ? json.added_tokens : [];
    this.added = addedList.map((a, i) => {
      if (!isObject(a) || typeof a.id !== 'number' || !Number.isInteger(a.id) || a.id < 0 || typeof a.content !== 'string') {
        throw tokenizerError(file, `added_tokens[${i}] is malformed`);
      }
      return {
        id: a.id as number,
        content: a.content,
        lstrip: a.lstrip === true,
        rstrip: a.rstrip === true,
        singleWord: a.single_word === true,
        normalized: a.normalized === true,
        special: a.special === true,
      };
    });
    for (const t of this.added) {
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
    }

    this.normalize = buildNormalizer(json.normalizer, file);
    this.preTokenize = buildPreTokenizer(json.pre_tokenizer, file);
    this.template = this.buildTemplate(json.post_processor, file);
    const dec = json.decoder;
    this.byteLevelDecoder =
      isObject(dec) &&
      (dec.type === 'ByteLevel' ||
        (dec.type === 'Sequence' && Array.isArray(dec.decoders) && dec.decoders.some((d) => isObject(d) && d.type === 'ByteLevel')));
    if (dec !== undefined && dec !== null && !this.byteLevelDecoder) {
      throw tokenizerError(file, `decoder ${JSON.stringify(isObject(dec) ? dec.type : dec)} is not supported`);
    }
    // transformers 4.37: clean_up_tokenization_spaces defaults to True when the config is silent.
    this.cleanUpTokenizationSpaces = configBool(config, 'clean_up_tokenization_spaces', true);
    const specialOf = (k: string): number | null => {
      const v = config[k];
      const c = typeof v === 'string' ? v : isObject(v) && typeof v.content === 'string' ? v.content : undefined;
      return c === undefined ? null : (this.tokenToId(c) ?? null);
    };
    this.bosTokenId = specialOf('bos_token');
    this.eosTokenId = specialOf('eos_token');
    this.addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : undefined;
    this.addEos = typeof config.add_eos_token === 'boolean' ? config.add_eos_token : undefined;
  }

  private buildTemplate(p: Json | undefined, file: string): TemplatePiece[] | null {
    if (p === undefined || p === null) return null;
    if (!isObject(p)) throw tokenizerError(file, 'post_processor must be an object or null');
    if (p.type === 'ByteLevel') return null;
    if (p.type === 'Sequence') {
      const procs = Array.isArray(p.processors) ? p.processors : [];
      const templates = procs.map((x) => this.buildTemplate(x, file)).filter((x): x is TemplatePiece[] => x !== null);
      if (templates.length > 1) throw tokenizerError(file, 'more than one TemplateProcessing is not supported');
      return templates[0] ?? null;
    }
    if (p.type !== 'TemplateProcessing') throw tokenizerError(file, `post_processor ${JSON.stringify(p.type)} is not supported`);
    const single = Array.isArray(p.single) ? p.single : [];
    if (isObject(p.special_tokens)) {
      for (const [k, v] of Object.entries(p.special_tokens)) {
        if (isObject(v) && Array.isArray(v.ids) && typeof v.ids[0] === 'number') this.specialIdsFromTemplate.set(k, v.ids[0]);
      }
    }
    return single.map((x) => {
      if (isObject(x) && isObject(x.SpecialToken) && typeof x.SpecialToken.id === 'string') return { special: x.SpecialToken.id };
      if (isObject(x) && isObject(x.Sequence)) return { sequence: true };
      throw tokenizerError(file, 'TemplateProcessing.single has an unknown element');
    });
  }

  get vocabSize(): number {
    const ids = new Set<number>(this.idToTok.keys());
    for (const id of this.addedById.keys()) ids.add(id);
    return ids.size;
  }

  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const seg of splitFast(text, this.added)) {
      if (seg.token) {
        out.push(seg.text);
        continue;
      }
      const normalized = this.normalize(seg.text);
      for (const piece of this.preTokenize([{ text: normalized, bytes: false }])) {
        const word = piece.bytes ? piece.text : byteLevelEncode(piece.text);
        if (word) out.push(...this.bpe.word(word));
      }
    }
    return out;
  }

  encode(text: string, addSpecialTokens: boolean): number[] {
    const ids = this.tokenize(text).map((t) => {
      const id = this.addedByContent.get(t)?.id ?? this.bpe.vocab.get(t);
      if (id === undefined) throw new RangeError(`token ${JSON.stringify(t)} has no id`);
      return id;
    });
    if (!addSpecialTokens) return ids;
    if (this.template) {
      const out: number[] = [];
      for (const p of this.template) {
        if (p.sequence) out.push(...ids);
        else if (p.special !== undefined) {
          const id = this.specialIdsFromTemplate.get(p.special) ?? this.tokenToId(p.special);
          if (id !== undefined) out.push(id);
        }
      }
      return out;
    }
    // No template: transformers adds bos/eos only where the config asks (LlamaTokenizerFast-style flags).
    return [
      ...(this.addBos && this.bosTokenId !== null ? [this.bosTokenId] : []),
      ...ids,
      ...(this.addEos && this.eosTokenId !== null ? [this.eosTokenId] : []),
    ];
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.bpe.vocab.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.idToTok.get(id);
  }

  /** A vocabulary token that is not an added token. */
  isPlain(id: number): boolean {
    return !this.addedById.has(id) && this.idToTok.has(id);
  }

  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special === true;
  }

  decode(ids: readonly number[], skipSpecialTokens: boolean): string {
    const tokens: string[] = [];
    for (const id of ids) {
      const t = this.idToToken(id);
      if (t === undefined) throw new RangeError(`token id ${id} is out of range`);
      if (skipSpecialTokens && this.isSpecial(id)) continue;
      tokens.push(t);
    }
    let text: string;
    if (this.byteLevelDecoder) {
      const bytes: number[] = [];
      for (const t of tokens) {
        const b = byteLevelBytes(t);
        if (b) bytes.push(...b);
        else bytes.push(...new TextEncoder().encode(t));
      }
      text = FastTokenizer.utf8.decode(new Uint8Array(bytes));
    } else {
      text = tokens.join(' ');
    }
    return this.cleanUpTokenizationSpaces ? cleanUpTokenization(text) : text;
  }

  get cleansSpaces(): boolean {
    return this.cleanUpTokenizationSpaces;
  }
}
