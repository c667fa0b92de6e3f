/**
 * A SentencePiece BPE processor equivalent to sentencepiece's
 * `SentencePieceProcessor` with a BPE model (bpe_model.cc, model_interface.cc,
 * sentencepiece_processor.cc), written from their documented behaviour:
 *
 * - encode: normalize; split into characters, user-defined pieces matched
 *   longest-first as single frozen symbols; repeatedly merge the adjacent pair
 *   whose concatenation is a piece with the highest score — ties go to the
 *   leftmost pair (sentencepiece's agenda orders by (score desc, left index
 *   asc)); UNUSED results are split back into the pair they were made from;
 *   characters outside the vocabulary become `<0xXX>` byte pieces (UTF-8
 *   bytes) with byte fallback, else one `<unk>` per run of unknown characters.
 * - decode: control pieces vanish, `<unk>` becomes the unk surface, runs of
 *   byte pieces are decoded as UTF-8 (each invalid byte → U+FFFD), U+2581 →
 *   space, and the first piece's leading U+2581 is dropped when the model adds
 *   a dummy prefix or removes extra whitespace.
 *
 * The merge loop is O(n log n): a binary heap of candidate pairs over a
 * doubly-linked list of symbols, stale entries skipped on pop.
 */
import { ModelType, PieceType, type SentencePieceModelProto } from './sentencepieceModel.js';
import { CharsMap, Normalizer, PrefixMatcher, SPACE_SYMBOL, charLen, toWellFormed } from './sentencepieceNormalizer.js';

export interface EncodedPiece {
  piece: string;
  id: number;
}

export interface SentencePieceOptions {
  /** Overrides normalizer_spec.add_dummy_prefix (HF's legacy=false tokenizers turn it off). */
  addDummyPrefix?: boolean;
}

interface Candidate {
  left: number;
  right: number;
  score: number;
  size: number;
}

/** true when a should be popped before b: higher score, then smaller left index. */
function before(a: Candidate, b: Candidate): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}

class Agenda {
  private readonly heap: Candidate[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(c: Candidate): void {
    const h = this.heap;
    h.push(c);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  pop(): Candidate | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

const BYTE_PIECE = /^<0x([0-9A-F]{2})>$/;

export function byteToPiece(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** sentencepiece's DecodeUTF8: [code point or -1 when invalid, bytes consumed]. */
function decodeUtf8At(bytes: number[], i: number): [number, number] {
  const len = bytes.length - i;
  const b0 = bytes[i];
  const trail = (x: number): boolean => (x & 0xc0) === 0x80;
  const valid = (cp: number): boolean => cp < 0xd800 || (cp >= 0xe000 && cp <= 0x10ffff);
  if (b0 < 0x80) return [b0, 1];
  if (len >= 2 && (b0 & 0xe0) === 0xc0) {
    const cp = ((b0 & 0x1f) << 6) | (bytes[i + 1] & 0x3f);
    if (trail(bytes[i + 1]) && cp >= 0x80 && valid(cp)) return [cp, 2];
  } else if (len >= 3 && (b0 & 0xf0) === 0xe0) {
    const cp = ((b0 & 0x0f) << 12) | ((bytes[i + 1] & 0x3f) << 6) | (bytes[i + 2] & 0x3f);
    if (trail(bytes[i + 1]) && trail(bytes[i + 2]) && cp >= 0x800 && valid(cp)) return [cp, 3];
  } else if (len >= 4 && (b0 & 0xf8) === 0xf0) {
    const cp =
      ((b0 & 0x07) << 18) | ((bytes[i + 1] & 0x3f) << 12) | ((bytes[i + 2] & 0x3f) << 6) | (bytes[i + 3] & 0x3f);
    if (trail(bytes[i + 1]) && trail(bytes[i + 2]) && trail(bytes[i + 3]) && cp >= 0x10000 && valid(cp)) {
      return [cp, 4];
    }
  }
  return [-1, 1];
}

/** Byte pieces decoded the sentencepiece way: valid characters kept, each invalid byte → U+FFFD. */
export function decodeBytesSentencePiece(bytes: number[]): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const [cp, n] = decodeUtf8At(bytes, i);
    out += cp < 0 ? '\ufffd' : String.fromCodePoint(cp);
    i += n;
  }
  return out;
}

export class SentencePieceProcessor {
  readonly pieces: readonly string[];
  private readonly scores: Float64Array;
  private readonly types: Uint8Array;
  /** NORMAL, USER_DEFINED and UNUSED pieces: the ones merges may produce. */
  private readonly normalMap = new Map<string, number>();
  /** UNKNOWN, CONTROL and BYTE pieces. */
  private readonly reservedMap = new Map<string, number>();
  private readonly matcher: PrefixMatcher;
  private readonly normalizer: Normalizer;
  private readonly denormalizer: Normalizer | null;
  readonly unkId: number;
  readonly byteFallback: boolean;
  readonly addDummyPrefix: boolean;
  readonly removeExtraWhitespaces: boolean;
  private readonly unkSurface: string;
  private readonly bytePieceIds: Int32Array;
  private readonly byteOfId = new Map<number, number>();
  private readonly bosPiece: string;
  private readonly eosPiece: string;
  private readonly padPiece: string;

  constructor(
    readonly proto: SentencePieceModelProto,
    options: SentencePieceOptions = {},
  ) {
    if (proto.trainerSpec.modelType !== ModelType.BPE) {
      const names: Record<number, string> = { 1: 'UNIGRAM', 2: 'BPE', 3: 'WORD', 4: 'CHAR' };
      throw new Error(
        `model_type ${names[proto.trainerSpec.modelType] ?? proto.trainerSpec.modelType} is not supported (only BPE models are)`,
      );
    }
    const n = proto.pieces.length;
    this.pieces = proto.pieces.map((p) => p.piece);
    this.scores = new Float64Array(n);
    this.types = new Uint8Array(n);
    const userDefined: string[] = [];
    let unkId = -1;
    this.byteFallback = proto.trainerSpec.byteFallback;
    this.bytePieceIds = new Int32Array(256).fill(-1);
    for (let i = 0; i < n; i++) {
      const p = proto.pieces[i];
      if (!p.piece) throw new Error(`piece ${i} is empty`);
      this.scores[i] = p.score;
      this.types[i] = p.type;
      const normal = p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED;
      const map = normal ? this.normalMap : this.reservedMap;
      if (map.has(p.piece)) throw new Error(`piece ${JSON.stringify(p.piece)} is defined twice`);
      map.set(p.piece, i);
      if (p.type === PieceType.USER_DEFINED) userDefined.push(p.piece);
      if (p.type === PieceType.UNKNOWN) {
        if (unkId >= 0) throw new Error('more than one UNKNOWN piece');
        unkId = i;
      }
      if (p.type === PieceType.BYTE) {
        if (!this.byteFallback) throw new Error(`byte piece ${p.piece} found although byte_fallback is false`);
        const m = BYTE_PIECE.exec(p.piece);
        if (!m) throw new Error(`byte piece ${JSON.stringify(p.piece)} is invalid`);
        const b = parseInt(m[1], 16);
        this.bytePieceIds[b] = i;
        this.byteOfId.set(i, b);
      }
    }
    if (unkId < 0) throw new Error('the model has no UNKNOWN piece');
    if (this.byteFallback && this.bytePieceIds.some((x) => x < 0)) {
      throw new Error('byte_fallback is set but the model lacks some of the 256 byte pieces');
    }
    this.unkId = unkId;
    this.unkSurface = proto.trainerSpec.unkSurface;
    this.bosPiece = proto.trainerSpec.bosPiece;
    this.eosPiece = proto.trainerSpec.eosPiece;
    this.padPiece = proto.trainerSpec.padPiece;
    this.matcher = new PrefixMatcher(userDefined);
    const spec = { ...proto.normalizerSpec };
    if (options.addDummyPrefix !== undefined) spec.addDummyPrefix = options.addDummyPrefix;
    this.addDummyPrefix = spec.addDummyPrefix;
    this.removeExtraWhitespaces = spec.removeExtraWhitespaces;
    this.normalizer = new Normalizer(spec, this.matcher, proto.trainerSpec.treatWhitespaceAsSuffix);
    const de = proto.denormalizerSpec;
    this.denormalizer =
      de && de.precompiledCharsmap.length > 0 ? new Normalizer(de, new PrefixMatcher([]), false) : null;
    // Validate the charsmap eagerly so a broken blob fails at load time.
    if (spec.precompiledCharsmap.length > 0) new CharsMap(spec.precompiledCharsmap);
  }

  get size(): number {
    return this.pieces.length;
  }

  pieceToId(piece: string): number {
    return this.reservedMap.get(piece) ?? this.normalMap.get(piece) ?? this.unkId;
  }

  /** Like pieceToId but undefined instead of unk for strings that are not pieces. */
  lookup(piece: string): number | undefined {
    return this.reservedMap.get(piece) ?? this.normalMap.get(piece);
  }

  idToPiece(id: number): string | undefined {
    return this.pieces[id];
  }

  score(id: number): number {
    return this.scores[id];
  }

  isNormal(id: number): boolean {
    return this.types[id] === PieceType.NORMAL;
  }
  isUnknown(id: number): boolean {
    return this.types[id] === PieceType.UNKNOWN;
  }
  isControl(id: number): boolean {
    return this.types[id] === PieceType.CONTROL;
  }
  isUnused(id: number): boolean {
    return this.types[id] === PieceType.UNUSED;
  }
  isUserDefined(id: number): boolean {
    return this.types[id] === PieceType.USER_DEFINED;
  }
  isByte(id: number): boolean {
    return this.types[id] === PieceType.BYTE;
  }

  /** sentencepiece's bos_id(): the bos piece's id when it is a CONTROL piece, else -1. */
  get bosId(): number {
    const id = this.pieceToId(this.bosPiece);
    return this.isControl(id) ? id : -1;
  }
  get eosId(): number {
    const id = this.pieceToId(this.eosPiece);
    return this.isControl(id) ? id : -1;
  }
  get padId(): number {
    const id = this.pieceToId(this.padPiece);
    return this.isControl(id) ? id : -1;
  }

  normalize(text: string): string {
    return this.normalizer.normalize(toWellFormed(text));
  }

  /** Encodes text to (piece, id) pairs exactly as `SentencePieceProcessor::Encode`. */
  encode(text: string): EncodedPiece[] {
    const normalized = this.normalize(text);
    const raw = this.bpe(normalized);
    const out: EncodedPiece[] = [];
    let prevUnk = false;
    for (const [w, id] of raw) {
      const unk = this.isUnknown(id);
      if (this.isControl(id)) {
        out.push({ piece: w, id });
      } else if (unk && this.byteFallback) {
        for (const b of Buffer.from(w, 'utf8')) out.push({ piece: byteToPiece(b), id: this.bytePieceIds[b] });
      } else if (prevUnk && unk) {
        out[out.length - 1].piece += w; // runs of unknown characters stay one <unk>
      } else {
        out.push({ piece: w, id });
      }
      prevUnk = unk;
    }
    return out;
  }

  encodeIds(text: string): number[] {
    return this.encode(text).map((p) => p.id);
  }

  encodePieces(text: string): string[] {
    return this.encode(text).map((p) => p.piece);
  }

  /** The BPE model proper (bpe::Model::SampleEncode without dropout) over a normalized string. */
  private bpe(normalized: string): Array<[string, number]> {
    if (normalized.length === 0) return [];
    // Symbols: [start, end) in `normalized`, linked list through prev/next.
    const starts: number[] = [];
    const ends: number[] = [];
    const frozen: boolean[] = [];
    for (let pos = 0; pos < normalized.length; ) {
      const m = this.matcher.match(normalized, pos);
      const len = m > 0 ? m : charLen(normalized, pos);
      starts.push(pos);
      ends.push(pos + len);
      frozen.push(m > 0);
      pos += len;
    }
    const count = starts.length;
    const prev = new Int32Array(count);
    const next = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < count ? i + 1 : -1;
    }
    const agenda = new Agenda();
    // Merged piece -> the pair it was made from, for resegmenting UNUSED pieces.
    const revMerge = new Map<string, [string, string]>();
    const symbol = (i: number): string => normalized.slice(starts[i], ends[i]);

    const maybeAdd = (left: number, right: number): void => {
      if (left === -1 || right === -1 || frozen[left] || frozen[right]) return;
      const piece = normalized.slice(starts[left], ends[right]);
      const id = this.normalMap.get(piece);
      if (id === undefined) return;
      agenda.push({ left, right, score: this.scores[id], size: piece.length });
      if (this.types[id] === PieceType.UNUSED) revMerge.set(piece, [symbol(left), symbol(right)]);
    };

    for (let i = 1; i < count; i++) maybeAdd(i - 1, i);

    for (;;) {
      const top = agenda.pop();
      if (!top) break;
      const { left, right } = top;
      const lLen = ends[left] - starts[left];
      const rLen = ends[right] - starts[right];
      // Stale: one side was merged away or grew since this pair was queued.
      if (lLen === 0 || rLen === 0 || lLen + rLen !== top.size) continue;
      ends[left] = ends[right];
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      starts[right] = ends[right]; // empty
      maybeAdd(prev[left], left);
      maybeAdd(left, next[left]);
    }

    const out: Array<[string, number]> = [];
    const resegment = (w: string): void => {
      const id = this.pieceToId(w);
      if (!this.isUnused(id)) {
        out.push([w, id]);
        return;
      }
      const pair = revMerge.get(w);
      if (!pair) {
        out.push([w, id]);
        return;
      }
      resegment(pair[0]);
      resegment(pair[1]);
    };
    for (let i = 0; i !== -1; i = next[i]) resegment(symbol(i));
    return out;
  }

  /** `SentencePieceProcessor::Decode` over piece strings. */
  decodePieces(pieces: readonly string[]): string {
    return this.decodeEntries(pieces.map((p) => [p, this.pieceToId(p)] as [string, number]));
  }

  /** `SentencePieceProcessor::Decode` over ids. Throws on ids out of range. */
  decodeIds(ids: readonly number[]): string {
    return this.decodeEntries(
      ids.map((id) => {
        const p = this.pieces[id];
        if (p === undefined) throw new RangeError(`invalid id ${id}`);
        return [p, id] as [string, number];
      }),
    );
  }

  private decodeEntries(entries: ReadonlyArray<[string, number]>): string {
    let text = '';
    let bytes: number[] = [];
    let isBosWs = true;
    let bosWsSeen = false;
    const bosWsApplies = this.addDummyPrefix || this.removeExtraWhitespaces;
    for (const [piece, id] of entries) {
      if (this.isByte(id)) {
        bytes.push(this.byteOfId.get(id)!);
        continue;
      }
      if (bytes.length) {
        text += decodeBytesSentencePiece(bytes);
        bytes = [];
      }
      if (bosWsSeen || text.length > 0) isBosWs = false;
      let decoded: string;
      bosWsSeen = false;
      if (this.isControl(id)) {
        decoded = '';
      } else if (this.isUnknown(id)) {
        decoded = this.pieces[id] === piece ? this.unkSurface : piece;
      } else {
        let p = piece;
        if (isBosWs && bosWsApplies && p.startsWith(SPACE_SYMBOL)) {
          p = p.slice(SPACE_SYMBOL.length);
          bosWsSeen = !this.removeExtraWhitespaces;
        }
        decoded = p.replaceAll(SPACE_SYMBOL, ' ');
      }
      text += decoded;
    }
    if (bytes.length) text += decodeBytesSentencePiece(bytes);
    if (this.denormalizer) text = this.denormalizer.normalize(text);
    return text;
  }
}
