/**
 * Incremental detokenization for streaming: `push(id)` returns only text that
 * no later token can change, `flush()` the rest, and the concatenation of all
 * chunks equals `decode(allIds)`.
 *
 * Each push decodes the ids and holds back the tail that may still change
 * (plus whatever the host's `finalPrefix` marks as pending):
 * - trailing U+FFFD (possibly an incomplete UTF-8 character split over
 *   byte-fallback / byte-level tokens);
 * - when the decoder cleans up tokenization spaces (" ." → "."), the tail from
 *   a space among the last 4 characters.
 * Everything else the supported decoders do only appends text.
 *
 * Cost stays linear over long generations: the stream periodically *settles*
 * a prefix of the ids and from then on decodes only a window that starts a few
 * tokens before the settled point (those context tokens put the decoder in the
 * same state it has in the full sequence: no first-token effects, same runs).
 * The text the window adds after its context is appended to the settled text.
 * A settle point is taken only between two plain tokens (host.isPlain) and
 * only when the window's decode of the shorter sequence is a prefix of its
 * decode of the longer one; if a window ever fails that check the stream falls
 * back to decoding everything.
 */

export interface DecodeStreamHost {
  decode(ids: readonly number[]): string;
  /** True when the decoder applies clean_up_tokenization (which rewrites " ." etc.). */
  readonly cleansSpaces: boolean;
  /**
   * How many leading ids have final text: decode(ids.slice(0, k)) is a prefix
   * of the decode of any continuation. Absent: all of them (only the tail rules
   * apply). The slow Llama (legacy) and InternLM2 decoders insert a space in
   * front of the run of tokens that precedes a special token, so there the run
   * after the last special token stays pending until the next one arrives.
   */
  finalPrefix?(ids: readonly number[]): number;
  /** A token that is neither special nor added nor a byte piece: windows may start and settle next to it. */
  isPlain?(id: number): boolean;
}

export interface DecodeStream {
  push(id: number): string;
  flush(): string;
}

const HOLD_FOR_CLEANUP = 4;
/** Settle once this many ids are past the settled point... */
const SETTLE_AFTER = 64;
/** ...keeping this many of the newest unsettled... */
const KEEP_PENDING = 24;
/** ...and this many ids of context before the settled point. */
const CONTEXT = 8;

export function stableLength(text: string, cleansSpaces: boolean): number {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0xfffd) end--;
  if (cleansSpaces) {
    const from = Math.max(0, end - HOLD_FOR_CLEANUP);
    const k = text.indexOf(' ', from);
    if (k >= 0 && k < end) end = k;
  }
  // Never cut a surrogate pair.
  if (end > 0 && end < text.length) {
    const c = text.charCodeAt(end - 1);
    if (c >= 0xd800 && c <= 0xdbff) end--;
  }
  return end;
}

/** The full text as settled prefix (length only; already emitted) + the window's tail. */
interface View {
  prefixLen: number;
  tail: string;
}

export function createDecodeStream(host: DecodeStreamHost): DecodeStream {
  const ids: number[] = [];
  let emitted = 0; // UTF-16 units of the full text already returned
  let finished = false;
  // Window state: the text of ids[0, settled) has `prefixLen` units (all emitted); the window
  // decodes ids[ctx, ...), whose first `ctxText.length` units belong to ids[ctx, settled).
  let settled = 0;
  let ctx = 0;
  let ctxText = '';
  let prefixLen = 0;

  const reset = (): void => {
    settled = ctx = prefixLen = 0;
    ctxText = '';
  };

  /** Text of ids[0, k) for k >= settled, through the window (null when the window disagrees). */
  const viewUpTo = (k: number): View | null => {
    if (settled === 0) return { prefixLen: 0, tail: host.decode(ids.slice(0, k)) };
    const w = host.decode(ids.slice(ctx, k));
    return w.startsWith(ctxText) ? { prefixLen, tail: w.slice(ctxText.length) } : null;
  };

  const fullView = (): View => {
    const v = viewUpTo(ids.length);
    if (v) return v;
    // The window disagrees with its context: decode everything from now on.
    reset();
    return { prefixLen: 0, tail: host.decode(ids) };
  };

  const stableEnd = (v: View): number => v.prefixLen + stableLength(v.tail, host.cleansSpaces);

  const maybeSettle = (full: View, end: number): void => {
    if (!host.isPlain || ids.length - settled < SETTLE_AFTER) return;
    const limit = host.finalPrefix ? host.finalPrefix(ids) : ids.length;
    let b = Math.min(ids.length - KEEP_PENDING, limit);
    // A settle point between two plain tokens, with plain context tokens before it.
    while (b > settled + CONTEXT && !(host.isPlain(ids[b - 1]) && host.isPlain(ids[b]))) b--;
    const c = b - CONTEXT;
    if (c <= settled || !host.isPlain(ids[c])) return;
    const upTo = viewUpTo(b);
    if (!upTo || upTo.prefixLen !== full.prefixLen || !full.tail.startsWith(upTo.tail)) return;
    const upToLen = upTo.prefixLen + upTo.tail.length;
    if (upToLen > end || upToLen > emitted) return;
    const newCtxText = host.decode(ids.slice(c, b));
    if (newCtxText.length === 0) return;
    // The new window must reproduce the current text after its context.
    const w = host.decode(ids.slice(c));
    if (!w.startsWith(newCtxText) || w.slice(newCtxText.length) !== full.tail.slice(upTo.tail.length)) return;
    settled = b;
    ctx = c;
    ctxText = newCtxText;
    prefixLen = upToLen;
  };

  const advance = (final: boolean): string => {
    const full = fullView();
    let end = final ? full.prefixLen + full.tail.length : stableEnd(full);
    if (!final && host.finalPrefix) {
      const k = host.finalPrefix(ids);
      if (k < ids.length) {
        const v = k === 0 ? { prefixLen: 0, tail: '' } : k >= settled ? viewUpTo(k) : null;
        end = Math.min(end, v === null ? emitted : stableEnd(v));
      }
    }
    let chunk = '';
    if (end > emitted) {
      // emitted >= full.prefixLen always: only emitted text is ever settled.
      chunk = full.tail.slice(emitted - full.prefixLen, end - full.prefixLen);
      emitted = end;
    }
    if (!final) maybeSettle(full, end);
    return chunk;
  };

  return {
    push(id: number): string {
      if (finished) throw new Error('push() after flush()');
      ids.push(id);
      return advance(false);
    },
    flush(): string {
      if (finished) return '';
      finished = true;
      return advance(true);
    },
  };
}
