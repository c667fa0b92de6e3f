/**
 * A guard against pre-tokenizer patterns that backtrack catastrophically. A tokenizer.json
 * is untrusted input, and a Split pattern such as `(a+)+$` makes JavaScript's backtracking
 * regex engine take seconds to minutes on a short run of one character: one such prompt
 * would freeze the event loop of the service embedding us. JavaScript cannot interrupt a
 * running match, so the pattern is tried at load on the inputs that trigger the known shapes
 * of the problem (nested or adjacent quantifiers over one character class, ended by a
 * character that makes the match fail) and refused when a probe is slow. Real tokenizers' patterns
 * scan these probes in microseconds; a refused pattern took over PROBE_LIMIT_MS on a probe
 * of at most 26 characters, i.e. it grows exponentially, or over it on a 4,096-character run
 * (quadratic or worse). A heuristic: it catches the classic shapes, not every slow pattern.
 */
import { performance } from 'node:perf_hooks';

const PROBE_LIMIT_MS = 40;
// One character of each class the family's patterns quantify over, and terminators.
const RUN_CHARS = ['a', 'A', 'é', '中', '1', ' ', '\t', '\n', "'", '!', '_'];
const ENDINGS = ['\u0000', '!', 'a'];

function timeMatch(re: RegExp, s: string): number {
  const t0 = performance.now();
  re.lastIndex = 0;
  for (const _ of s.matchAll(re)); // every match, as splitting a prompt does
  return performance.now() - t0;
}

/** Throws an Error naming the probe when `re` is slow on one. */
export function assertNoCatastrophicBacktracking(re: RegExp): void {
  // Short runs first, growing a character at a time, so an exponential pattern is caught
  // near the limit (each character doubles its time) rather than far past it.
  const probes: string[] = [];
  for (const n of [12, 16, 18, 20, 21, 22, 23, 24, 25, 26]) {
    for (const c of RUN_CHARS) for (const end of ENDINGS) probes.push(c.repeat(n) + end);
  }
  for (const c of RUN_CHARS) probes.push(c.repeat(4096) + '\u0000');
  for (const s of probes) {
    const ms = timeMatch(re, s);
    // far over: refused at once; just over: once more, so a GC pause does not count
    if (ms > PROBE_LIMIT_MS && (ms > 4 * PROBE_LIMIT_MS || timeMatch(re, s) > PROBE_LIMIT_MS)) {
      const shown = JSON.stringify(s.length > 40 ? `${s.slice(0, 8)}…(${s.length} chars)` : s);
      throw new Error(`the pattern takes over ${PROBE_LIMIT_MS} ms on the ${s.length}-character input ${shown} (catastrophic backtracking): a prompt could freeze the process`);
    }
  }
}
