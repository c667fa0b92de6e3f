/**
 * Incremental detokenization for streaming: `push(id)` returns only text that
 * no later token can change, `flush()` the rest, and the concatenation of all
 * chunks equals `decode(allIds)`.
 *
 * Each push re-decodes all ids pushed so far and holds back the tail that may
 * still change (plus whatever the host's `finalPrefix` marks as pending):
 * - trailing U+FFFD (possibly an incomplete UTF-8 character split over
 *   byte-fallback / byte-level tokens);
 * - when the decoder cleans up tokenization spaces (" ." → "."), the tail from
 *   a space among the last 4 characters.
 * Everything else the supported decoders do only appends text.

 *
 * Cost: one full decode per push (quadratic over a very long generation; a
 * few ms per token at 10k tokens).
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
}

export interface DecodeStream {
  push(id: number): string;
  flush(): string;
}

const HOLD_FOR_CLEANUP = 4;

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

export function createDecodeStream(host: DecodeStreamHost): DecodeStream {
  const ids: number[] = [];
  let emitted = 0; // UTF-16 units of decode(ids) already returned
  let finished = false;

  const advance = (final: boolean): string => {
    const full = host.decode(ids);
    let end = final ? full.length : stableLength(full, host.cleansSpaces);
    if (!final && host.finalPrefix) {
      const k = host.finalPrefix(ids);
      if (k < ids.length) end = Math.min(end, k === 0 ? 0 : stableLength(host.decode(ids.slice(0, k)), host.cleansSpaces));
    }
    if (end <= emitted) return '';
    const chunk = full.slice(emitted, end);
    emitted = end;
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
