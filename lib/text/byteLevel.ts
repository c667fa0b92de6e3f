/**
 * Byte-level BPE (GPT-2 family: Qwen2, Llama-3): the byte↔unicode table, the
 * pre-tokenizer regexes translated to JS, and the rank-ordered merge loop.
 *
 * The merge loop pops the lowest-rank pair (leftmost on ties) from a heap over
 * a linked list of symbols — the same result as GPT-2's "merge every
 * occurrence of the best pair, left to right" (a merge only ever creates pairs
 * of higher rank), but O(n log n) on very long words such as unspaced Chinese.
 */

/** GPT-2's bytes_to_unicode(): printable bytes map to themselves, the rest to U+0100.. */
function buildByteTables(): { byteToChar: string[]; charToByte: Map<string, number> } {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const byteToChar: string[] = new Array(256);
  const charToByte = new Map<string, number>();
  bs.forEach((b, i) => {
    byteToChar[b] = String.fromCodePoint(cs[i]);
    charToByte.set(byteToChar[b], b);
  });
  return { byteToChar, charToByte };
}

export const { byteToChar: BYTE_TO_CHAR, charToByte: CHAR_TO_BYTE } = buildByteTables();

const encoder = new TextEncoder();

/** UTF-8 bytes of `text`, each mapped through the byte-level table. */
export function byteLevelEncode(text: string): string {
  let out = '';
  for (const b of encoder.encode(text)) out += BYTE_TO_CHAR[b];
  return out;
}

/** The bytes behind byte-level characters; undefined when a character is not in the table. */
export function byteLevelBytes(token: string): number[] | undefined {
  const out: number[] = [];
  for (const ch of token) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b === undefined) return undefined;
    out.push(b);
  }
  return out;
}

/**
 * Translates a Python-`regex` / Oniguruma pattern as used by HF pre-tokenizers
 * into a JS unicode regex source:
 * - `\s` / `\S` become the Unicode White_Space property (JS's `\s` also matches
 *   U+FEFF and misses U+0085, unlike Python and Oniguruma);
 * - `(?i:...)` groups of literal alternatives become explicit case classes
 *   (Node 20 has no inline modifiers).
 */
export function translatePattern(pattern: string): string {
  let out = '';
  let i = 0;
  let inClass = false;
  while (i < pattern.length) {
    const c = pattern[i];
    if (c === '\\') {
      const n = pattern[i + 1];
      if (n === 's') out += inClass ? '\\p{White_Space}' : '\\p{White_Space}';
      else if (n === 'S') out += '\\P{White_Space}';
      else out += c + (n ?? '');
      i += 2;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      i++;
      continue;
    }
    if (pattern.startsWith('(?i:', i)) {
      // Find the matching ')': only literal alternatives are supported inside.
      let depth = 1;
      let j = i + 4;
      let body = '';
      while (j < pattern.length && depth > 0) {
        const d = pattern[j];
        if (d === '\\') {
          body += d + pattern[j + 1];
          j += 2;
          continue;
        }
        if (d === '(') depth++;
        if (d === ')') depth--;
        if (depth > 0) body += d;
        j++;
      }
      if (depth !== 0 || /[()[\]{}*+?.^$]/.test(body.replace(/\\./g, ''))) {
        throw new Error(`unsupported case-insensitive group in pre-tokenizer pattern: ${pattern}`);
      }
      let conv = '';
      for (const ch of body) {
        const lo = ch.toLowerCase();
        const up = ch.toUpperCase();
        if (lo !== up && lo.length === 1 && up.length === 1) {
          // Simple case folding, as both Python's regex and Oniguruma apply it (ſ folds to s, K-sign to k).
          const extra = lo === 's' ? '\u017f' : lo === 'k' ? '\u212a' : '';
          conv += `[${lo}${up}${extra}]`;
        } else conv += ch;
      }
      out += `(?:${conv})`;
      i = j;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

/** Qwen2's pre-tokenizer (tokenization_qwen2.py PRETOKENIZE_REGEX). */
export const QWEN2_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** GPT-2's pattern (the ByteLevel pre-tokenizer's own regex, `use_regex: true`). */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

export function compilePattern(pattern: string): RegExp {
  return new RegExp(translatePattern(pattern), 'gu');
}

/** Splits text into the matches of `re` and the gaps between them (HF Split, behavior Isolated). */
export function splitIsolated(text: string, re: RegExp): string[] {
  const out: string[] = [];
  let last = 0;
  re.lastIndex = 0;
  for (const m of text.matchAll(re)) {
    if (m[0].length === 0) continue;
    if (m.index! > last) out.push(text.slice(last, m.index));
    out.push(m[0]);
    last = m.index! + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** Only the matches (Python's re.findall, as slow GPT-2-style tokenizers use it). */
export function findAll(text: string, re: RegExp): string[] {
  const out: string[] = [];
  re.lastIndex = 0;
  for (const m of text.matchAll(re)) if (m[0].length > 0) out.push(m[0]);
  return out;
}

interface Cand {
  rank: number;
  left: number;
  right: number;
  leftLen: number;
  rightLen: number;
}

function less(a: Cand, b: Cand): boolean {
  return a.rank < b.rank || (a.rank === b.rank && a.left < b.left);
}

const POS_BITS = 2 ** 22; // positions per word in the packed heap keys (rank * POS_BITS + left)

/** A min-heap of packed numbers (rank * POS_BITS + left): lowest rank first, then leftmost. */
class NumberHeap {
  private a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(x: number): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= x) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = x;
  }
  pop(): number | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      const n = a.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const m = r < n && a[r] < a[l] ? r : l;
        if (a[m] >= last) break;
        a[i] = a[m];
        i = m;
      }
      a[i] = last;
    }
    return top;
  }
}

export class ByteLevelBPE {
  /** "a b" -> rank (string path, used when merges reach outside the vocabulary). */
  private readonly ranks = new Map<string, number>();
  /** (idA * idSpan + idB) -> rank, and the merged token's id per rank (integer path). */
  private readonly pairRank = new Map<number, number>();
  private readonly mergedId: Int32Array;
  private readonly idSpan: number;
  private readonly idToToken: string[] = [];
  private readonly integerPath: boolean;
  private readonly cache = new Map<string, string[]>();

  constructor(
    readonly vocab: ReadonlyMap<string, number>,
    merges: ReadonlyArray<readonly [string, string]>,
    /** tokenizers' `ignore_merges`: a word that is itself in the vocabulary is one token. */
    private readonly ignoreMerges = false,
  ) {
    let maxId = 0;
    for (const [t, id] of vocab) {
      this.idToToken[id] = t;
      if (id > maxId) maxId = id;
    }
    this.idSpan = maxId + 1;
    this.mergedId = new Int32Array(merges.length);
    let integerPath = merges.length < 2 ** 30;
    merges.forEach(([a, b], i) => {
      const key = `${a} ${b}`;
      if (!this.ranks.has(key)) this.ranks.set(key, i);
      const ia = vocab.get(a);
      const ib = vocab.get(b);
      const im = vocab.get(a + b);
      if (ia === undefined || ib === undefined || im === undefined) {
        integerPath = false;
        return;
      }
      const k = ia * this.idSpan + ib;
      if (!this.pairRank.has(k)) this.pairRank.set(k, i);
      this.mergedId[i] = im;
    });
    this.integerPath = integerPath;
  }

  /** BPE over one pre-tokenized word already mapped to byte-level characters. */
  word(word: string): string[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const result = this.merge(word);
    if (this.cache.size < 100_000 && word.length < 256) this.cache.set(word, result);
    return result;
  }

  private merge(word: string): string[] {
    if (this.ignoreMerges && this.vocab.has(word)) return [word];
    const chars = Array.from(word);
    if (chars.length <= 1) return chars;
    return (this.integerPath && chars.length < POS_BITS && this.mergeIds(chars)) || this.mergeStrings(chars);
  }

  /** The merge loop on vocabulary ids; null when a character is not in the vocabulary. */
  private mergeIds(chars: string[]): string[] | null {
    const n = chars.length;
    const sym = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const id = this.vocab.get(chars[i]);
      if (id === undefined) return null;
      sym[i] = id;
    }
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    const gone = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap = new NumberHeap();
    const span = this.idSpan;
    const consider = (left: number): void => {
      if (left < 0) return;
      const right = next[left];
      if (right < 0) return;
      const rank = this.pairRank.get(sym[left] * span + sym[right]);
      if (rank !== undefined) heap.push(rank * POS_BITS + left);
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    for (;;) {
      const x = heap.pop();
      if (x === undefined) break;
      const left = x % POS_BITS;
      const rank = (x - left) / POS_BITS;
      if (gone[left]) continue;
      const right = next[left];
      if (right < 0) continue;
      // Stale unless the pair at `left` is still the one this entry was made for.
      if (this.pairRank.get(sym[left] * span + sym[right]) !== rank) continue;
      sym[left] = this.mergedId[rank];
      gone[right] = 1;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      consider(prev[left]);
      consider(left);
    }
    const out: string[] = [];
    for (let i = 0; i !== -1; i = next[i]) out.push(this.idToToken[sym[i]]);
    return out;
  }

  /** The same loop on strings (merges whose parts or results are not vocabulary entries). */
  private mergeStrings(sym: string[]): string[] {
    const n = sym.length;
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap: Cand[] = [];
    const push = (c: Cand): void => {
      heap.push(c);
      let i = heap.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!less(heap[i], heap[p])) break;
        [heap[i], heap[p]] = [heap[p], heap[i]];
        i = p;
      }
    };
    const pop = (): Cand | undefined => {
      if (heap.length === 0) return undefined;
      const top = heap[0];
      const last = heap.pop()!;
      if (heap.length) {
        heap[0] = last;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < heap.length && less(heap[l], heap[m])) m = l;
          if (r < heap.length && less(heap[r], heap[m])) m = r;
          if (m === i) break;
          [heap[i], heap[m]] = [heap[m], heap[i]];
          i = m;
        }
      }
      return top;
    };
    const consider = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const rank = this.ranks.get(`${sym[left]} ${sym[right]}`);
      if (rank === undefined) return;
      push({ rank, left, right, leftLen: sym[left].length, rightLen: sym[right].length });
    };
    for (let i = 0; i + 1 < n; i++) consider(i, i + 1);
    for (;;) {
      const c = pop();
      if (!c) break;
      const { left, right } = c;
      // Stale when either side was merged away or has grown since.
      if (sym[left] === '' || sym[right] === '' || next[left] !== right) continue;
      if (sym[left].length !== c.leftLen || sym[right].length !== c.rightLen) continue;
      sym[left] += sym[right];
      sym[right] = '';
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      consider(prev[left], left);
      consider(left, next[left]);
    }
    const out: string[] = [];
    for (let i = 0; i !== -1; i = next[i]) out.push(sym[i]);
    return out;
  }
}
