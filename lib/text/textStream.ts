/**
 * Turns decoded text chunks into what a streaming caller should see, so that the
 * concatenated stream equals the final cleaned response: leading whitespace is
 * dropped (the reference strips), trailing whitespace and any tail that could be
 * the start of a stop string are held back until later text settles them.
 */
export class TextStreamFilter {
  private pending = '';
  private started = false;
  private stopped = false;
  private readonly stops: string[];

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** True once a stop string was seen; nothing more is emitted. */
  get hitStop(): boolean {
    return this.stopped;
  }

  /** Feeds a chunk; returns the text now safe to emit (possibly empty). */
  push(chunk: string): string {
    if (this.stopped) return '';
    let text = this.pending + chunk;
    if (!this.started) {
      text = text.replace(/^\s+/u, '');
      if (text.length === 0) {
        this.pending = '';
        return '';
      }
      this.started = true;
    }
    let cut = -1;
    for (const s of this.stops) {
      const at = text.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.stopped = true;
      this.pending = '';
      return text.slice(0, cut).replace(/\s+$/u, '');
    }
    // Hold a possible stop-string start, and the whitespace before it, which is
    // trailing whitespace if the stop string completes.
    const safe = text.slice(0, text.length - this.partialStopLength(text)).replace(/\s+$/u, '');
    this.pending = text.slice(safe.length);
    return safe;
  }

  /** End of generation: whatever is held back is trailing whitespace or a stop prefix that never completed. */
  flush(): string {
    const rest = this.stopped ? '' : this.pending.replace(/\s+$/u, '');
    this.pending = '';
    return rest;
  }

  private partialStopLength(text: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, text.length); n > best; n--) {
        if (text.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
