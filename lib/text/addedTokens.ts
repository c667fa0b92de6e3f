/**
 * Hugging Face "added tokens": the tokens (special or not) that are matched in
 * the raw text before the base model sees it.
 *
 * Two splitters, matching the two Hugging Face code paths:
 * - {@link AddedTokenTrie} + {@link splitSlow}: the slow `PreTrainedTokenizer.tokenize`
 *   (transformers 4.37): its `Trie.split` (the first partial match that can be
 *   completed wins, with its longest completion), then the per-token
 *   `rstrip` / `lstrip` / `single_word` rules applied to the neighbouring chunks.
 * - {@link splitFast}: the `tokenizers` library's AddedVocabulary (leftmost-longest
 *   match; `lstrip`/`rstrip` swallow the adjacent whitespace into the token;
 *   `single_word` tokens only match between word boundaries).
 */

export interface AddedToken {
  id: number;
  content: string;
  lstrip: boolean;
  rstrip: boolean;
  singleWord: boolean;
  normalized: boolean;
  special: boolean;
}

export interface Segment {
  text: string;
  /** Set when the segment is an added token. */
  token?: AddedToken;
}

/** Python's str.isspace() for one character. */
export function pyIsSpace(ch: string): boolean {
  const c = ch.codePointAt(0)!;
  return (
    (c >= 0x09 && c <= 0x0d) ||
    (c >= 0x1c && c <= 0x20) ||
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

/** Python's str.lstrip() / rstrip() with no argument. */
export function pyLstrip(s: string): string {
  let i = 0;
  while (i < s.length && pyIsSpace(s[i])) i++;
  return s.slice(i);
}
export function pyRstrip(s: string): string {
  let j = s.length;
  while (j > 0 && pyIsSpace(s[j - 1])) j--;
  return s.slice(0, j);
}

interface TrieNode {
  children: Map<string, TrieNode>;
  terminal: boolean;
}

function newNode(): TrieNode {
  return { children: new Map(), terminal: false };
}

/** Characters of a string the way Python iterates it (code points). */
function chars(s: string): string[] {
  return Array.from(s);
}

/** transformers' `Trie` (tokenization_utils.py), same splitting semantics. */
export class AddedTokenTrie {
  private readonly root = newNode();

  constructor(words: Iterable<string>) {
    for (const w of words) this.add(w);
  }

  add(word: string): void {
    if (!word) return;
    let node = this.root;
    for (const ch of chars(word)) {
      let next = node.children.get(ch);
      if (!next) node.children.set(ch, (next = newNode()));
      node = next;
    }
    node.terminal = true;
  }

  get empty(): boolean {
    return this.root.children.size === 0;
  }

  split(text: string): string[] {
    if (this.empty) return text ? [text] : [];
    const cs = chars(text);
    // Partial matches: start index (in code points) -> trie node, in insertion (= start) order.
    let states = new Map<number, TrieNode>();
    const offsets: number[] = [0];
    let skip = 0;
    for (let current = 0; current < cs.length; current++) {
      if (skip && current < skip) continue;
      const ch = cs[current];
      const toRemove: number[] = [];
      let reset = false;
      for (const [start0, node0] of states) {
        if (node0.terminal) {
          // A match ends here. Look for the earliest partial match that can be completed,
          // and take its longest completion.
          let start = start0;
          let end = current;
          for (const [lookstart, lookNode0] of states) {
            if (lookstart > start) break;
            let lookNode: TrieNode | undefined = lookNode0;
            let lookahead: number;
            if (lookstart < start) {
              // Already advanced past `current` in this iteration.
              lookahead = current + 1;
              end = current + 1;
            } else {
              lookahead = current;
              end = current;
            }
            if (lookNode.terminal) {
              start = lookstart;
              end = lookahead;
              skip = lookahead;
            }
            while (lookahead < cs.length) {
              const nextNode: TrieNode | undefined = lookNode.children.get(cs[lookahead]);
              if (!nextNode) break;
              lookNode = nextNode;
              lookahead++;
              if (lookNode.terminal) {
                start = lookstart;
                end = lookahead;
                skip = lookahead;
              }
            }
          }
          offsets.push(start, end);
          reset = true;
          break;
        }
        const next = node0.children.get(ch);
        if (next) states.set(start0, next);
        else toRemove.push(start0);
      }
      if (reset) states = new Map();
      else for (const s of toRemove) states.delete(s);
      if (current >= skip) {
        const first = this.root.children.get(ch);
        if (first) states.set(current, first);
      }
    }
    for (const [start, node] of states) {
      if (node.terminal) {
        offsets.push(start, cs.length);
        break;
      }
    }
    // cut_text
    offsets.push(cs.length);
    const out: string[] = [];
    let prev = 0;
    for (const end of offsets) {
      if (prev >= end) continue;
      out.push(cs.slice(prev, end).join(''));
      prev = end;
    }
    return out;
  }
}

/**
 * The slow tokenizer's added-token pass: trie split, then strip rules. Returns
 * the non-empty segments, added tokens marked.
 */
export function splitSlow(text: string, trie: AddedTokenTrie, byContent: ReadonlyMap<string, AddedToken>): Segment[] {
  const tokens = trie.split(text);
  for (let i = 0; i < tokens.length; i++) {
    const tok = byContent.get(tokens[i]);
    if (!tok) continue;
    const left = i > 0 ? tokens[i - 1] : undefined;
    const right = i < tokens.length - 1 ? tokens[i + 1] : undefined;
    if (tok.rstrip && right) tokens[i + 1] = pyLstrip(right);
    if (tok.lstrip && left) tokens[i - 1] = pyRstrip(left);
    if (tok.singleWord && left && left[left.length - 1] !== ' ') {
      tokens[i - 1] += tokens[i];
      tokens[i] = '';
    } else if (tok.singleWord && right && right[0] !== ' ') {
      tokens[i + 1] = tokens[i] + tokens[i + 1];
      tokens[i] = '';
    }
  }
  const out: Segment[] = [];
  for (const t of tokens) {
    if (!t) continue;
    const tok = byContent.get(t);
    out.push(tok ? { text: t, token: tok } : { text: t });
  }
  return out;
}

function isWordChar(ch: string | undefined): boolean {
  return ch !== undefined && /[\p{L}\p{N}_\p{M}]/u.test(ch);
}

/**
 * The `tokenizers` AddedVocabulary split: leftmost-longest matches over the
 * text; `lstrip`/`rstrip` extend a match over adjacent whitespace (removed from
 * the neighbours); `single_word` matches must not touch word characters.
 */
export function splitFast(text: string, tokens: readonly AddedToken[]): Segment[] {
  if (tokens.length === 0) return text ? [{ text }] : [];
  const byFirst = new Map<string, AddedToken[]>();
  for (const t of tokens) {
    if (!t.content) continue;
    const first = String.fromCodePoint(t.content.codePointAt(0)!);
    let list = byFirst.get(first);
    if (!list) byFirst.set(first, (list = []));
    list.push(t);
  }
  for (const list of byFirst.values()) list.sort((a, b) => b.content.length - a.content.length);

  const out: Segment[] = [];
  let textStart = 0;
  let pos = 0;
  while (pos < text.length) {
    const cp = text.codePointAt(pos)!;
    const step = cp > 0xffff ? 2 : 1;
    const list = byFirst.get(String.fromCodePoint(cp));
    let hit: AddedToken | undefined;
    if (list) {
      for (const t of list) {
        if (!text.startsWith(t.content, pos)) continue;
        if (t.singleWord) {
          const before = pos > 0 ? text[pos - 1] : undefined;
          const after = text[pos + t.content.length];
          if (isWordChar(before) || isWordChar(after)) continue;
        }
        hit = t;
        break;
      }
    }
    if (!hit) {
      pos += step;
      continue;
    }
    let mStart = pos;
    let mEnd = pos + hit.content.length;
    if (hit.lstrip) while (mStart > textStart && /\s/u.test(text[mStart - 1])) mStart--;
    if (hit.rstrip) while (mEnd < text.length && /\s/u.test(text[mEnd])) mEnd++;
    if (mStart > textStart) out.push({ text: text.slice(textStart, mStart) });
    out.push({ text: hit.content, token: hit });
    pos = textStart = mEnd;
  }
  if (textStart < text.length) out.push({ text: text.slice(textStart) });
  return out;
}
