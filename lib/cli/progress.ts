/**
 * Progress for long CLI operations (loading weights, decoding video, downloads).
 *
 * ```ts
 * const p = createProgress({ label: 'weights', total: bytes, unit: 'bytes' });
 * p.update(done);          // as often as you like: redraws at most every 100 ms
 * p.done();                // final state and a newline (or one summary line)
 * ```
 *
 * On a TTY: one line redrawn in place, `label [████░░░░] 45% 1.2/2.6 GiB 340 MiB/s ETA 4s`.
 * Otherwise (a pipe, a log file): plain lines, one per quarter reached and a summary at
 * the end (with `quietMs`, only once the operation has taken that long). `enabled: false`
 * (the CLI's `--json`) makes every call a no-op. INTERNVL_PROGRESS=tty|plain|none forces a
 * style ('auto', the default, picks by isTTY). Colour follows {@link colorEnabled}:
 * NO_COLOR turns it off, FORCE_COLOR on, else only on a TTY.
 */

/** What `total` and `done` count: bytes (shown as KiB/MiB/GiB) or items (frames, tensors). */
export type ProgressUnit = 'bytes' | 'items';

export interface ProgressOptions {
  /** What is progressing ("loading weights", "decoding frames"). */
  label: string;
  /** The amount when done; 0 or less shows no percentage (unknown size). */
  total: number;
  /** Default 'items'. */
  unit?: ProgressUnit;
  /** Where to draw (default process.stderr). */
  stream?: ProgressStream;
  /** false: draw nothing at all (machine-readable output). Default true. */
  enabled?: boolean;
  /** Environment consulted for NO_COLOR / FORCE_COLOR (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Clock in ms (tests). Default performance.now. */
  now?: () => number;
  /** Plain style chosen automatically (not a TTY): say nothing until this many ms have passed. Default 0. */
  quietMs?: number;
}

/** How progress is drawn: redrawn bar, plain lines, or not at all. */
export type ProgressStyle = 'tty' | 'plain' | 'none';

/** The style for `stream`: INTERNVL_PROGRESS (tty, plain, none) when set, else by whether it is a TTY. */
export function progressStyle(stream: ProgressStream = process.stderr, env: NodeJS.ProcessEnv = process.env): ProgressStyle {
  const forced = env.INTERNVL_PROGRESS;
  if (forced === 'tty' || forced === 'plain' || forced === 'none') return forced;
  return stream.isTTY === true ? 'tty' : 'plain';
}

/** The part of a tty.WriteStream the renderer uses. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface Progress {
  /** Reports `done` of the total; `detail` is a short suffix ("312/412 tensors"). */
  update(done: number, detail?: string): void;
  /** Changes the total (a size learnt late). */
  setTotal(total: number): void;
  /** Finishes: the bar at its final value and a newline on a TTY, a summary line otherwise. */
  done(detail?: string): void;
}

/**
 * Whether to colour output on `stream`: never when NO_COLOR is set (non-empty,
 * https://no-color.org), always when FORCE_COLOR is set (except '0'/'false'), else only
 * on a TTY whose TERM is not 'dumb'.
 */
export function colorEnabled(stream: ProgressStream = process.stderr, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined) return env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  return stream.isTTY === true && env.TERM !== 'dumb';
}

/** SGR colour helpers that return the text unchanged when colour is off. */
export function palette(on: boolean) {
  const wrap = (code: string) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { bold: wrap('1'), dim: wrap('2'), red: wrap('31'), green: wrap('32'), yellow: wrap('33'), cyan: wrap('36') };
}

/** 1536 → "1.5 KiB"; binary units, three significant digits. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (Math.abs(n) >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(n)} B` : `${n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2)} ${units[u]}`;
}

/** Seconds as "4s", "2m05s", "1h02m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const REDRAW_MS = 100;

/** Starts a progress display; see the module comment. */
export function createProgress(options: ProgressOptions): Progress {
  const { label } = options;
  const unit = options.unit ?? 'items';
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? (() => performance.now());
  const env = options.env ?? process.env;
  const style = progressStyle(stream, env);
  if (options.enabled === false || style === 'none') return { update() {}, setTotal() {}, done() {} };
  const tty = style === 'tty';
  // Automatic plain style stays quiet for quick operations; a forced one always reports.
  const quietMs = env.INTERNVL_PROGRESS === 'plain' ? 0 : (options.quietMs ?? 0);
  const c = palette(colorEnabled(stream, env));
  const start = now();
  let total = options.total;
  let current = 0;
  let lastDraw = -Infinity;
  let nextQuarter = 1; // plain mode: the next 25% step to report
  let finished = false;
  let spoke = false; // plain style: a line has been written

  const amount = (n: number) => (unit === 'bytes' ? formatBytes(n) : String(Math.round(n)));
  const rate = (n: number, ms: number) => {
    const perSecond = ms > 0 ? (n * 1000) / ms : 0;
    return unit === 'bytes' ? `${formatBytes(perSecond)}/s` : `${perSecond.toFixed(perSecond >= 10 ? 0 : 1)}/s`;
  };

  const drawTty = (final: boolean, detail?: string) => {
    const elapsed = now() - start;
    const frac = total > 0 ? Math.min(1, current / total) : 0;
    const pct = total > 0 ? `${String(Math.floor(frac * 100)).padStart(3)}%` : '';
    const counts = total > 0 ? `${amount(current)}/${amount(total)}` : amount(current);
    const speed = elapsed > 0 && current > 0 ? rate(current, elapsed) : '';
    const eta = final
      ? formatDuration(elapsed / 1000)
      : total > 0 && current > 0 && current < total
        ? `ETA ${formatDuration(((total - current) * elapsed) / current / 1000)}`
        : '';
    const tail = [pct, counts, speed, eta, detail ?? ''].filter((s) => s !== '').join(' ');
    const columns = stream.columns ?? 80;
    const barWidth = Math.max(10, Math.min(40, columns - label.length - tail.length - 5));
    const filled = Math.round(frac * barWidth);
    const bar = total > 0 ? ` [${c.cyan('█'.repeat(filled))}${c.dim('░'.repeat(barWidth - filled))}]` : '';
    stream.write(`\r\x1b[2K${c.bold(label)}${bar} ${tail}${final ? '\n' : ''}`);
  };

  return {
    update(done: number, detail?: string) {
      if (finished) return;
      current = done;
      if (tty) {
        const t = now();
        if (t - lastDraw >= REDRAW_MS) {
          lastDraw = t;
          drawTty(false, detail);
        }
        return;
      }
      if (total <= 0) return;
      let quarter = 0;
      while (nextQuarter < 4 && current >= (total * nextQuarter) / 4) quarter = nextQuarter++;
      if (quarter > 0 && now() - start < quietMs) return;
      if (quarter > 0) spoke = true;
      if (quarter > 0) stream.write(`${label}: ${quarter * 25}% (${amount(current)} of ${amount(total)})${detail ? `, ${detail}` : ''}\n`);
    },
    setTotal(t: number) {
      total = t;
    },
    done(detail?: string) {
      if (finished) return;
      finished = true;
      if (total > 0) current = Math.max(current, total);
      if (tty) {
        drawTty(true, detail);
        return;
      }
      const seconds = (now() - start) / 1000;
      if (!spoke && seconds * 1000 < quietMs) return;
      const speed = seconds > 0 && current > 0 ? `, ${rate(current, seconds * 1000)}` : '';
      stream.write(`${label}: done, ${amount(current)}${detail ? ` (${detail})` : ''} in ${seconds.toFixed(1)} s${speed}\n`);
    },
  };
}
