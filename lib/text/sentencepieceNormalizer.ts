/**
 * SentencePiece's normalizer (normalizer.cc), on JS strings.
 *
 * Per "prefix" of the input it takes, in order: a user-defined symbol (never
 * normalized), the longest rule of the precompiled charsmap (a darts-clone
 * double-array trie over UTF-8 bytes whose values point into a pool of
 * NUL-terminated replacement strings), or one character unchanged. Then:
 * leading/trailing/repeated spaces are dropped when `remove_extra_whitespaces`,
 * spaces become U+2581 when `escape_whitespaces`, and one U+2581 is prepended
 * (or appended with `treat_whitespace_as_suffix`) when `add_dummy_prefix`.
 */
import type { NormalizerSpec } from './sentencepieceModel.js';

export const SPACE_SYMBOL = '\u2581';

interface MatchNode {
  next: Map<number, MatchNode>;
  terminal: boolean;
}

/**
 * Longest-match dictionary of user-defined symbols (sentencepiece's
 * PrefixMatcher): a trie over UTF-16 code units, so a lookup costs the length
 * of the match, however many symbols share a first character.
 */
export class PrefixMatcher {
  private readonly root: MatchNode = { next: new Map(), terminal: false };
  private count = 0;

  constructor(symbols: Iterable<string>) {
    for (const s of symbols) {
      if (!s) continue;
      let node = this.root;
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        let n = node.next.get(c);
        if (!n) node.next.set(c, (n = { next: new Map(), terminal: false }));
        node = n;
      }
      node.terminal = true;
      this.count++;
    }
  }

  get empty(): boolean {
    return this.count === 0;
  }

  /** Length (UTF-16 units) of the longest symbol starting at `pos`, or 0. */
  match(text: string, pos: number): number {
    if (this.count === 0) return 0;
    let node: MatchNode | undefined = this.root;
    let best = 0;
    for (let i = pos; i < text.length; i++) {
      node = node.next.get(text.charCodeAt(i));
      if (!node) break;
      if (node.terminal) best = i + 1 - pos;
    }
    return best;
  }
}

/** Length in UTF-16 units of the code point at `pos`. */
export function charLen(text: string, pos: number): number {
  const c = text.charCodeAt(pos);
  if (c >= 0xd800 && c <= 0xdbff && pos + 1 < text.length) {
    const d = text.charCodeAt(pos + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return 2;
  }
  return 1;
}

/** Replaces lone surrogates by U+FFFD (what UTF-8 encoding of the string would do). */
export function toWellFormed(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/**
 * The precompiled charsmap: `<uint32 trie size><double array (uint32 units)><NUL-terminated strings>`.
 */
export class CharsMap {
  private readonly units: Uint32Array;
  private readonly pool: Uint8Array;
  private readonly cache = new Map<number, string>();
  private static readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });

  constructor(blob: Uint8Array) {
    if (blob.length <= 4) throw new Error('precompiled_charsmap is too short');
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = view.getUint32(0, true);
    if (trieSize >= blob.length || trieSize % 4 !== 0 || trieSize + 4 > blob.length) {
      throw new Error('precompiled_charsmap: trie size exceeds the blob');
    }
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 + i * 4, true);
    this.pool = blob.subarray(4 + trieSize);
  }

  /**
   * Longest rule matching `text` at `pos`: returns [consumed UTF-16 units, replacement] or null.
   * The trie is walked byte by byte over the UTF-8 encoding of the following characters.
   */
  longest(text: string, pos: number): [number, string] | null {
    const units = this.units;
    if (units.length === 0) return null;
    let node = 0;
    let unit = units[0];
    node ^= offsetOf(unit);
    let bestLen = 0;
    let bestValue = -1;
    let i = pos;
    const bytes = [0, 0, 0, 0];
    while (i < text.length) {
      const cp = text.codePointAt(i)!;
      const n = encodeUtf8(cp, bytes);
      for (let k = 0; k < n; k++) {
        const b = bytes[k];
        node ^= b;
        if (node >= units.length) return this.result(bestLen, bestValue);
        unit = units[node];
        if ((unit & 0x800000ff) >>> 0 !== b) return this.result(bestLen, bestValue);
        node ^= offsetOf(unit);
        if (node >= units.length) return this.result(bestLen, bestValue);
        if ((unit >>> 8) & 1 && k === n - 1) {
          // A rule ends here (only whole characters are keys).
          bestLen = i + (cp > 0xffff ? 2 : 1) - pos;
          bestValue = units[node] & 0x7fffffff;
        }
      }
      i += cp > 0xffff ? 2 : 1;
    }
    return this.result(bestLen, bestValue);
  }

  private result(len: number, value: number): [number, string] | null {
    if (len === 0) return null;
    return [len, this.stringAt(value)];
  }

  private stringAt(offset: number): string {
    let s = this.cache.get(offset);
    if (s !== undefined) return s;
    let end = offset;
    while (end < this.pool.length && this.pool[end] !== 0) end++;
    s = CharsMap.decoder.decode(this.pool.subarray(offset, end));
    this.cache.set(offset, s);
    return s;
  }
}

function offsetOf(unit: number): number {
  return (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
}

function encodeUtf8(cp: number, out: number[]): number {
  if (cp < 0x80) {
    out[0] = cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = 0xc0 | (cp >> 6);
    out[1] = 0x80 | (cp & 0x3f);
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = 0xe0 | (cp >> 12);
    out[1] = 0x80 | ((cp >> 6) & 0x3f);
    out[2] = 0x80 | (cp & 0x3f);
    return 3;
  }
  out[0] = 0xf0 | (cp >> 18);
  out[1] = 0x80 | ((cp >> 12) & 0x3f);
  out[2] = 0x80 | ((cp >> 6) & 0x3f);
  out[3] = 0x80 | (cp & 0x3f);
  return 4;
}

export class Normalizer {
  private readonly charsMap: CharsMap | null;

  constructor(
    private readonly spec: NormalizerSpec,
    private readonly matcher: PrefixMatcher,
    private readonly treatWhitespaceAsSuffix = false,
  ) {
    this.charsMap = spec.precompiledCharsmap.length > 0 ? new CharsMap(spec.precompiledCharsmap) : null;
  }

  /** One normalization step at `pos`: [consumed UTF-16 units, output]. */
  private prefix(text: string, pos: number): [number, string] {
    const m = this.matcher.match(text, pos);
    if (m > 0) return [m, text.substr(pos, m)];
    if (this.charsMap) {
      const r = this.charsMap.longest(text, pos);
      if (r) return r;
    }
    const n = charLen(text, pos);
    return [n, text.substr(pos, n)];
  }

  normalize(input: string): string {
    const spec = this.spec;
    if (input.length === 0) return '';
    let pos = 0;
    if (spec.removeExtraWhitespaces) {
      while (pos < input.length) {
        const [n, s] = this.prefix(input, pos);
        if (s !== ' ') break;
        pos += n;
      }
    }
    if (pos >= input.length) return '';

    const ws = spec.escapeWhitespaces ? SPACE_SYMBOL : ' ';
    const out: string[] = [];
    if (!this.treatWhitespaceAsSuffix && spec.addDummyPrefix) out.push(ws);

    let isPrevSpace = spec.removeExtraWhitespaces;
    while (pos < input.length) {
      const [n, piece] = this.prefix(input, pos);
      let sp = piece;
      if (isPrevSpace) {
        let k = 0;
        while (k < sp.length && sp.charCodeAt(k) === 0x20) k++;
        sp = sp.slice(k);
      }
      if (sp.length > 0) {
        out.push(spec.escapeWhitespaces ? sp.replaceAll(' ', SPACE_SYMBOL) : sp);
        isPrevSpace = sp.endsWith(' ');
      }
      pos += n;
      if (!spec.removeExtraWhitespaces) isPrevSpace = false;
    }

    let normalized = out.join('');
    if (spec.removeExtraWhitespaces) {
      while (normalized.endsWith(ws)) normalized = normalized.slice(0, -ws.length);
    }
    if (this.treatWhitespaceAsSuffix && spec.addDummyPrefix) normalized += ws;
    return normalized;
  }
}
