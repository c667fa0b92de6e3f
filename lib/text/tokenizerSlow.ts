/**
 * The Hugging Face *slow* tokenizers that InternVL2 loads (`use_fast=False`),
 * as of transformers 4.37: `PreTrainedTokenizer`'s added-token handling and
 * `_decode`, with the model-specific parts of `LlamaTokenizer`,
 * `InternLM2Tokenizer` (the checkpoints' remote code) and `Qwen2Tokenizer`.
 */
import { AddedTokenTrie, splitSlow, type AddedToken } from './addedTokens.js';
import { ByteLevelBPE, byteLevelBytes, byteLevelEncode, compilePattern, findAll, QWEN2_PATTERN } from './byteLevel.js';
import { SPACE_SYMBOL } from './sentencepieceNormalizer.js';
import type { SentencePieceProcessor } from './sentencepiece.js';
import { SPECIAL_ATTRIBUTES, configBool, type SideFiles, type TokenSpec } from './tokenizerConfig.js';

export interface ClassDefaults {
  special: Partial<Record<(typeof SPECIAL_ATTRIBUTES)[number], string | null>>;
  cleanUpTokenizationSpaces: boolean;
}

/** transformers' clean_up_tokenization. */
export function cleanUpTokenization(s: string): string {
  return s
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

export abstract class SlowTokenizer {
  abstract readonly kind: 'sentencepiece' | 'byte-level-bpe';
  /** Size of the base vocabulary (sp pieces / vocab.json), without added tokens. */
  abstract readonly baseVocabSize: number;

  protected readonly addedById = new Map<number, AddedToken>();
  protected readonly addedByContent = new Map<string, AddedToken>();
  protected trie!: AddedTokenTrie;
  /** all_special_tokens: bos/eos/unk/sep/pad/cls/mask + additional_special_tokens. */
  readonly allSpecialTokens = new Set<string>();
  readonly allSpecialIds = new Set<number>();
  protected readonly specialTokens: Partial<Record<(typeof SPECIAL_ATTRIBUTES)[number], string>> = {};
  protected additionalSpecialTokens: string[] = [];
  cleanUpTokenizationSpaces: boolean;
  protected spacesBetweenSpecialTokens = true;

  constructor(
    protected readonly files: SideFiles,
    defaults: ClassDefaults,
  ) {
    this.cleanUpTokenizationSpaces = configBool(files.config, 'clean_up_tokenization_spaces', defaults.cleanUpTokenizationSpaces);
    for (const [id, t] of files.addedTokens) {
      this.addedById.set(id, t);
      this.addedByContent.set(t.content, t);
    }
    this.defaults = defaults;
  }

  private defaults: ClassDefaults;

  /**
   * PreTrainedTokenizer.__init__ step 4: special tokens missing from the added
   * vocabulary are added (at their base-vocab id when they are pieces, else at
   * the end). Call once the base model is loaded.
   */
  protected initSpecialTokens(): void {
    const specs: TokenSpec[] = [];
    for (const a of SPECIAL_ATTRIBUTES) {
      const declared = this.files.special[a];
      const spec: TokenSpec | null =
        declared === undefined ? (this.defaults.special[a] != null ? { content: this.defaults.special[a]! } : null) : declared;
      if (spec) {
        this.specialTokens[a] = spec.content;
        specs.push(spec);
      }
    }
    this.additionalSpecialTokens = this.files.additionalSpecial.map((t) => t.content);
    specs.push(...this.files.additionalSpecial);
    const seen = new Set<string>();
    let next = this.vocabLength();
    for (const s of specs) {
      if (seen.has(s.content)) continue;
      seen.add(s.content);
      this.allSpecialTokens.add(s.content);
      if (this.addedByContent.has(s.content)) continue;
      const base = this.baseIdOfContent(s.content);
      const id = base ?? next++;
      const t: AddedToken = {
        id,
        content: s.content,
        lstrip: s.lstrip ?? false,
        rstrip: s.rstrip ?? false,
        singleWord: s.singleWord ?? false,
        normalized: s.normalized ?? false,
        special: true,
      };
      this.addedById.set(id, t);
      this.addedByContent.set(t.content, t);
    }
    for (const c of this.allSpecialTokens) {
      const id = this.tokenToId(c);
      if (id !== undefined) this.allSpecialIds.add(id);
    }
    this.trie = new AddedTokenTrie([...this.addedById.values()].map((t) => t.content));
  }

  /**
   * get_vocab()'s size: the base ids plus added tokens outside them. O(added tokens): it is
   * read per generated token (a Set over a 150k vocabulary cost ~30 ms each time).
   */
  private vocabLength(): number {
    let extra = 0;
    for (const id of this.addedById.keys()) if (id < 0 || id >= this.baseVocabSize) extra++;
    return this.baseVocabSize + extra;
  }

  private baseIdOfContent(content: string): number | undefined {
    const id = this.baseTokenToId(content);
    if (id === undefined) return undefined;
    // convert_ids_to_tokens shows an added token's content at its id, not the base piece.
    return this.addedById.has(id) ? undefined : id;
  }

  get vocabSize(): number {
    return this.vocabLength();
  }

  /** The base model's token for a string, or undefined. */
  protected abstract baseTokenToId(token: string): number | undefined;
  /** The base model's id for a token produced by `modelTokenize` (falls back to unk). */
  protected abstract baseConvertTokenToId(token: string): number;
  protected abstract baseIdToToken(id: number): string | undefined;
  /** `_tokenize`: one chunk of text without added tokens. */
  protected abstract modelTokenize(text: string): string[];
  /** `convert_tokens_to_string` for a run of non-added tokens. */
  protected abstract convertTokensToString(tokens: string[]): string;
  /** `build_inputs_with_special_tokens` for one sequence. */
  protected abstract buildInputs(ids: number[]): number[];
  abstract readonly bosTokenId: number | null;
  abstract readonly eosTokenId: number | null;

  protected prepareForTokenization(text: string): string {
    return text;
  }

  /** PreTrainedTokenizer.tokenize */
  tokenize(text: string): string[] {
    const prepared = this.prepareForTokenization(text);
    const out: string[] = [];
    for (const seg of splitSlow(prepared, this.trie, this.addedByContent)) {
      if (seg.token) out.push(seg.text);
      else out.push(...this.modelTokenize(seg.text));
    }
    return out;
  }

  convertTokenToId(token: string): number {
    const added = this.addedByContent.get(token);
    return added ? added.id : this.baseConvertTokenToId(token);
  }

  encode(text: string, addSpecialTokens: boolean): number[] {
    const ids = this.tokenize(text).map((t) => this.convertTokenToId(t));
    return addSpecialTokens ? this.buildInputs(ids) : ids;
  }

  tokenToId(token: string): number | undefined {
    const added = this.addedByContent.get(token);
    return added ? added.id : this.baseTokenToId(token);
  }

  idToToken(id: number): string | undefined {
    const added = this.addedById.get(id);
    return added ? added.content : this.baseIdToToken(id);
  }

  protected specialId(attr: (typeof SPECIAL_ATTRIBUTES)[number]): number | null {
    const c = this.specialTokens[attr];
    if (c === undefined) return null;
    return this.tokenToId(c) ?? this.baseConvertTokenToId(c);
  }

  /** PreTrainedTokenizer._decode */
  decode(ids: readonly number[], skipSpecialTokens: boolean): string {
    const tokens: string[] = [];
    for (const id of ids) {
      if (skipSpecialTokens && this.allSpecialIds.has(id)) continue;
      const t = this.idToToken(id);
      if (t === undefined) throw new RangeError(`token id ${id} is out of range`);
      tokens.push(t);
    }
    const legacyAdded = new Set<string>();
    for (const c of this.addedByContent.keys()) if (!this.allSpecialTokens.has(c)) legacyAdded.add(c);
    for (const c of this.additionalSpecialTokens) {
      const id = this.tokenToId(c);
      if (id !== undefined && id >= this.baseVocabSize) legacyAdded.add(c);
    }
    const subTexts: string[] = [];
    let current: string[] = [];
    for (const t of tokens) {
      if (legacyAdded.has(t)) {
        if (current.length) {
          const s = this.convertTokensToString(current);
          if (s.length > 0) subTexts.push(s);
          current = [];
        }
        subTexts.push(t);
      } else current.push(t);
    }
    if (current.length) subTexts.push(this.convertTokensToString(current));
    const text = subTexts.join(this.spacesBetweenSpecialTokens ? ' ' : '');
    return this.cleanUpTokenizationSpaces ? cleanUpTokenization(text) : text;
  }

  /** Whether decode() may rewrite text near the end once more tokens arrive (for streaming). */
  get cleansSpaces(): boolean {
    return this.cleanUpTokenizationSpaces;
  }

  /** A base-vocabulary token that is not added/special (and, for SentencePiece, not a byte or control piece). */
  isPlain(id: number): boolean {
    return !this.addedById.has(id) && !this.allSpecialIds.has(id) && this.isPlainBase(id);
  }
  protected abstract isPlainBase(id: number): boolean;

  /** Whether convert_tokens_to_string inserts ' ' before a special token that follows other tokens. */
  protected get spaceBeforeSpecial(): boolean {
    return false;
  }

  /**
   * For streaming: the number of leading ids whose decoded text no later id can
   * change. With spaceBeforeSpecial, a special token arriving later inserts a
   * space in front of the run that follows the last special / added token, so
   * that run is pending. Skipped special tokens never reach that rule.
   */
  finalPrefix(ids: readonly number[], skipSpecialTokens: boolean): number {
    if (!this.spaceBeforeSpecial || skipSpecialTokens) return ids.length;
    for (let j = ids.length - 1; j >= 0; j--) {
      const t = this.idToToken(ids[j]);
      if (t !== undefined && (this.allSpecialTokens.has(t) || this.addedByContent.has(t))) return j + 1;
    }
    return 0;
  }
}

/** The slow tokenizers over a SentencePiece model: base vocabulary lookups go to the model. */
abstract class SentencePieceSlowTokenizer extends SlowTokenizer {
  readonly kind = 'sentencepiece' as const;
  readonly baseVocabSize: number;

  constructor(
    protected readonly sp: SentencePieceProcessor,
    files: SideFiles,
    defaults: ClassDefaults,
  ) {
    super(files, defaults);
    this.baseVocabSize = sp.size;
  }

  protected baseTokenToId(token: string): number | undefined {
    return this.sp.lookup(token);
  }
  protected baseConvertTokenToId(token: string): number {
    return this.sp.pieceToId(token);
  }
  protected baseIdToToken(id: number): string | undefined {
    return this.sp.idToPiece(id);
  }
  protected isPlainBase(id: number): boolean {
    return this.sp.isNormal(id);
  }
}

/** transformers' LlamaTokenizer (4.37), incl. `legacy` and add_bos/add_eos. */
export class LlamaSlowTokenizer extends SentencePieceSlowTokenizer {
  readonly legacy: boolean;
  private readonly addBos: boolean;
  private readonly addEos: boolean;
  private readonly unkText: string;
  private unkLength = 0;

  constructor(sp: SentencePieceProcessor, files: SideFiles) {
    super(sp, files, {
      special: { unk_token: '<unk>', bos_token: '<s>', eos_token: '</s>', pad_token: null },
      cleanUpTokenizationSpaces: false,
    });
    this.legacy = configBool(files.config, 'legacy', true);
    this.addBos = configBool(files.config, 'add_bos_token', true);
    this.addEos = configBool(files.config, 'add_eos_token', false);
    this.initSpecialTokens();
    this.unkText = this.specialTokens.unk_token ?? 'None';
    // unk_token_length: pieces of the unk text encoded by the (dummy-prefix-free) model.
    this.unkLength = sp.encode(this.unkText).length;
  }


  get bosTokenId(): number | null {
    return this.specialId('bos_token');
  }
  get eosTokenId(): number | null {
    return this.specialId('eos_token');
  }

  override tokenize(text: string): string[] {
    if (this.legacy || text.length === 0) return super.tokenize(text);
    const tokens = super.tokenize(SPACE_SYMBOL + text.replaceAll(SPACE_SYMBOL, ' '));
    if (tokens.length > 1 && tokens[0] === SPACE_SYMBOL && this.allSpecialTokens.has(tokens[1])) tokens.shift();
    return tokens;
  }

  protected modelTokenize(text: string): string[] {
    if (this.legacy || !(text.startsWith(SPACE_SYMBOL) || text.startsWith(' '))) return this.sp.encodePieces(text);
    const tokens = this.sp.encodePieces(this.unkText + text);
    return tokens.length >= this.unkLength ? tokens.slice(this.unkLength) : tokens;
  }

  protected override get spaceBeforeSpecial(): boolean {
    return this.legacy;
  }

  protected convertTokensToString(tokensIn: string[]): string {
    const tokens = tokensIn.slice();
    if (tokens[0].startsWith(SPACE_SYMBOL)) tokens[0] = tokens[0].slice(SPACE_SYMBOL.length);
    let out = '';
    let current: string[] = [];
    let prevIsSpecial = false;
    tokens.forEach((t, i) => {
      if (this.allSpecialTokens.has(t)) {
        if (!prevIsSpecial && i !== 0 && this.legacy) out += ' ';
        out += this.sp.decodePieces(current) + t;
        prevIsSpecial = true;
        current = [];
      } else {
        current.push(t);
        prevIsSpecial = false;
      }
    });
    return out + this.sp.decodePieces(current);
  }

  protected buildInputs(ids: number[]): number[] {
    const bos = this.addBos ? this.bosTokenId : null;
    const eos = this.addEos ? this.eosTokenId : null;
    return [...(bos !== null ? [bos] : []), ...ids, ...(eos !== null ? [eos] : [])];
  }
}

/** InternLM2Tokenizer (the InternLM2 / InternVL2 checkpoints' tokenization_internlm2.py). */
export class InternLM2SlowTokenizer extends SentencePieceSlowTokenizer {
  private readonly addBos: boolean;
  private readonly addEos: boolean;

  constructor(sp: SentencePieceProcessor, files: SideFiles) {
    super(sp, files, {
      special: { unk_token: '<unk>', bos_token: '<s>', eos_token: '</s>', pad_token: '</s>' },
      cleanUpTokenizationSpaces: false,
    });
    this.addBos = configBool(files.config, 'add_bos_token', true);
    this.addEos = configBool(files.config, 'add_eos_token', false);
    this.initSpecialTokens();
  }


  // InternLM2Tokenizer overrides these with the sentencepiece model's own ids.
  get bosTokenId(): number | null {
    const id = this.sp.bosId;
    return id >= 0 ? id : null;
  }
  get eosTokenId(): number | null {
    const id = this.sp.eosId;
    return id >= 0 ? id : null;
  }

  protected modelTokenize(text: string): string[] {
    return this.sp.encodePieces(text);
  }

  protected convertTokensToString(tokens: string[]): string {
    let out = '';
    let current: string[] = [];
    let prevIsSpecial = false;
    for (const t of tokens) {
      if (this.allSpecialTokens.has(t)) {
        if (!prevIsSpecial) out += ' ';
        out += this.sp.decodePieces(current) + t;
        prevIsSpecial = true;
        current = [];
      } else {
        current.push(t);
        prevIsSpecial = false;
      }
    }
    out += this.sp.decodePieces(current);
    out = cleanUpTokenization(out);
    // _maybe_add_prefix_space compares a token string with a set of ids, so it always
    // prepends ' ', which the final [1:] removes again: net effect nothing.
    return out;
  }

  override get cleansSpaces(): boolean {
    return true;
  }

  protected override get spaceBeforeSpecial(): boolean {
    return true;
  }

  protected buildInputs(ids: number[]): number[] {
    const bos = this.addBos ? this.bosTokenId : null;
    const out = [...(bos !== null ? [bos] : []), ...ids];
    if (this.addEos && this.eosTokenId !== null) out.push(this.eosTokenId);
    return out;
  }
}

/** transformers' Qwen2Tokenizer (slow): NFC, Qwen2 regex, byte-level BPE, no BOS/EOS. */
export class Qwen2SlowTokenizer extends SlowTokenizer {
  readonly kind = 'byte-level-bpe' as const;
  readonly baseVocabSize: number;
  private readonly decoderMap = new Map<number, string>();
  private readonly pattern = compilePattern(QWEN2_PATTERN);
  private static readonly utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

  constructor(
    private readonly bpe: ByteLevelBPE,
    files: SideFiles,
  ) {
    super(files, {
      special: { unk_token: '<|endoftext|>', bos_token: null, eos_token: '<|endoftext|>', pad_token: '<|endoftext|>' },
      cleanUpTokenizationSpaces: false,
    });
    for (const [t, id] of bpe.vocab) this.decoderMap.set(id, t);
    this.baseVocabSize = bpe.vocab.size;
    this.initSpecialTokens();
    // Qwen2Tokenizer.decode passes spaces_between_special_tokens=False and clean_up_tokenization_spaces=False.
    this.spacesBetweenSpecialTokens = false;
    this.cleanUpTokenizationSpaces = false;
  }

  protected baseTokenToId(token: string): number | undefined {
    return this.bpe.vocab.get(token);
  }
  protected baseConvertTokenToId(token: string): number {
    const id = this.bpe.vocab.get(token);
    if (id !== undefined) return id;
    const unk = this.specialTokens.unk_token;
    const u = unk !== undefined ? this.bpe.vocab.get(unk) : undefined;
    if (u === undefined) throw new RangeError(`token ${JSON.stringify(token)} is not in the vocabulary and there is no unk token`);
    return u;
  }
  protected baseIdToToken(id: number): string | undefined {
    return this.decoderMap.get(id);
  }
  protected isPlainBase(id: number): boolean {
    return this.decoderMap.has(id);
  }

  get bosTokenId(): number | null {
    return this.specialId('bos_token');
  }
  get eosTokenId(): number | null {
    return this.specialId('eos_token');
  }

  protected override prepareForTokenization(text: string): string {
    return text.normalize('NFC');
  }

  protected modelTokenize(text: string): string[] {
    const out: string[] = [];
    for (const word of findAll(text, this.pattern)) out.push(...this.bpe.word(byteLevelEncode(word)));
    return out;
  }

  protected convertTokensToString(tokens: string[]): string {
    const bytes: number[] = [];
    for (const t of tokens) {
      const b = byteLevelBytes(t);
      if (!b) throw new RangeError(`token ${JSON.stringify(t)} is not byte-level`);
      bytes.push(...b);
    }
    return Qwen2SlowTokenizer.utf8.decode(new Uint8Array(bytes));
  }

  protected buildInputs(ids: number[]): number[] {
    return ids;
  }
}
