/**
 * A tiny seeded fuzzer for the TypeScript parsers (no dependency): a PRNG, byte
 * mutations (libFuzzer's usual ones), structural JSON mutations, awkward strings,
 * and a loop that reports the seed and iteration of a failure and keeps the input.
 *
 * Replay a failure with FUZZ_SEED=<seed> (the failing iteration is reached again:
 * everything is derived from the seed). FUZZ_SCALE=<k> runs k times the iterations.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InternVLError, type InternVLErrorCode } from '../../lib/errors.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** mulberry32: small, fast, and the same sequence on every machine. */
export class Rng {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const INTERESTING = [0, 1, 2, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff];

/** Byte-level mutations: flips, sets, deletions, insertions, duplications, integers, splices, truncation, runs. */
export function mutateBytes(rng: Rng, input: Uint8Array, others: readonly Uint8Array[] = []): Uint8Array {
  let b = Buffer.from(input); // a copy
  const cat = (...parts: Uint8Array[]) => Buffer.concat(parts);
  const rounds = 1 + rng.below(6);
  for (let k = 0; k < rounds; k++) {
    switch (rng.below(9)) {
      case 0:
        if (b.length) b[rng.below(b.length)] ^= 1 << rng.below(8);
        break;
      case 1:
        if (b.length) b[rng.below(b.length)] = rng.below(256);
        break;
      case 2: {
        if (!b.length) break;
        const at = rng.below(b.length);
        b = cat(b.subarray(0, at), b.subarray(at + 1 + rng.below(Math.min(b.length - at, 32))));
        break;
      }
      case 3: {
        const at = rng.below(b.length + 1);
        const ins = Buffer.from(Array.from({ length: 1 + rng.below(8) }, () => rng.below(256)));
        b = cat(b.subarray(0, at), ins, b.subarray(at));
        break;
      }
      case 4: {
        if (!b.length) break;
        const from = rng.below(b.length);
        const chunk = Buffer.from(b.subarray(from, from + 1 + rng.below(64)));
        const at = rng.below(b.length + 1);
        b = cat(b.subarray(0, at), chunk, b.subarray(at));
        break;
      }
      case 5: {
        if (b.length < 4) break;
        const v = rng.pick(INTERESTING);
        const width = rng.pick([1, 2, 4]);
        const at = rng.below(b.length - width + 1);
        const bigEndian = rng.chance(0.5);
        for (let i = 0; i < width; i++) b[at + i] = (v >>> (8 * (bigEndian ? width - 1 - i : i))) & 0xff;
        break;
      }
      case 6: {
        if (!others.length) break;
        const o = rng.pick(others);
        b = cat(b.subarray(0, rng.below(b.length + 1)), o.subarray(rng.below(o.length + 1)));
        break;
      }
      case 7:
        b = b.subarray(0, rng.below(b.length + 1));
        break;
      case 8: {
        // a byte run repeated: long runs are what break decoders' loops
        if (!b.length) break;
        const at = rng.below(b.length);
        b = cat(b.subarray(0, at), Buffer.alloc(1 + rng.below(300), b[at]), b.subarray(at));
        break;
      }
    }
  }
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

const TOKENS = [
  '<s>', '</s>', '<unk>', '<image>', '<img>', '</img>', '<IMG_CONTEXT>', '<|im_start|>', '<|im_end|>', '<|end|>',
  '<|user|>', '<|assistant|>', '\u2581', '\ufeff', '\u0000', '\ud800', '\udc00', '\u{1F600}', '漢字', 'é', '\r\n', '\t',
  ' ', '  ', '\n\n', '0123456789', 'Ġ', 'Ċ', '\u200b', '\u0301', 'ﬁ', '①', 'x'.repeat(300),
];

/** Text a user might send, with the tokenizers' special cases over-represented. */
export function randomText(rng: Rng, maxParts = 12): string {
  let s = '';
  const n = rng.below(maxParts + 1);
  for (let i = 0; i < n; i++) {
    switch (rng.below(4)) {
      case 0:
        s += rng.pick(TOKENS);
        break;
      case 1:
        s += String.fromCharCode(...Array.from({ length: 1 + rng.below(8) }, () => 32 + rng.below(95)));
        break;
      case 2:
        s += String.fromCodePoint(rng.chance(0.5) ? rng.below(0x3000) : rng.below(0x110000 - 0xe000) + (rng.chance(0.5) ? 0 : 0xe000));
        break;
      default:
        s += String.fromCharCode(rng.below(0x10000)); // lone surrogates included
    }
  }
  return s;
}

function randomScalar(rng: Rng, keys: readonly string[]): Json {
  switch (rng.below(14)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 1, 2, 0.5, 1.5, -0.25, 3, 16, 1e-9]);
    case 3:
      return rng.pick([2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e15, 1e308, -1e308, 5e-324, 123456789]);
    case 4:
      return '';
    case 5:
      return randomText(rng, 4);
    case 6:
      return rng.pick(keys.length ? keys : ['x']);
    case 7:
      return [];
    case 8:
      return {};
    case 9:
      return rng.pick(TOKENS);
    case 10:
      return 'x'.repeat(1 + rng.below(5000));
    case 11:
      return Array.from({ length: rng.below(5) }, () => rng.below(1000));
    case 12:
      return rng.pick(['true', 'null', '1', '-1', 'NaN', 'Infinity', 'gelu', 'silu', 'rms_norm', 'v2', 'BPE', 'dynamic', 'su']);
    default:
      return rng.below(100000) - 50000;
  }
}

/** Every key of a JSON value (for mutations that add keys the parser knows). */
export function jsonKeys(v: Json, out = new Set<string>()): string[] {
  if (Array.isArray(v)) v.forEach((x) => jsonKeys(x, out));
  else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.add(k);
      jsonKeys(x, out);
    }
  }
  return [...out];
}

type Slot = { get(): Json; set(v: Json): void; remove?(): void; parent: Json };

function slots(root: { v: Json }): Slot[] {
  const out: Slot[] = [{ get: () => root.v, set: (v) => (root.v = v), parent: null }];
  const walk = (v: Json) => {
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        out.push({ get: () => v[i], set: (n) => (v[i] = n), remove: () => v.splice(i, 1), parent: v });
        walk(x);
      });
    } else if (v !== null && typeof v === 'object') {
      for (const k of Object.keys(v)) {
        out.push({ get: () => v[k], set: (n) => (v[k] = n), remove: () => delete v[k], parent: v });
        walk(v[k]);
      }
    }
  };
  walk(root.v);
  return out;
}

/** Structural mutations of a JSON value: values replaced, numbers and strings bent, keys removed or added, arrays grown. */
export function mutateJson(rng: Rng, value: Json, keys: readonly string[] = jsonKeys(value)): Json {
  const root = { v: structuredClone(value) };
  const rounds = 1 + rng.below(4);
  for (let k = 0; k < rounds; k++) {
    const all = slots(root);
    const s = rng.pick(all);
    const cur = s.get();
    switch (rng.below(8)) {
      case 0:
        s.set(randomScalar(rng, keys));
        break;
      case 1:
        if (typeof cur === 'number') {
          s.set(rng.pick([cur * 2, -cur, cur + 1, cur - 1, 0, cur * 1e6, cur + 0.5, Math.floor(cur / 3), cur * 2 ** 30]));
        } else {
          s.set(randomScalar(rng, keys));
        }
        break;
      case 2:
        if (typeof cur === 'string') {
          s.set(rng.pick([cur.slice(0, rng.below(cur.length + 1)), cur + randomText(rng, 3), cur.toUpperCase(), randomText(rng, 2) + cur, '']));
        } else {
          s.set(randomScalar(rng, keys));
        }
        break;
      case 3:
        s.remove?.();
        break;
      case 4:
        if (cur !== null && typeof cur === 'object' && !Array.isArray(cur)) cur[rng.pick(keys.length ? keys : ['k'])] = randomScalar(rng, keys);
        else if (Array.isArray(cur)) cur.splice(rng.below(cur.length + 1), 0, cur.length && rng.chance(0.7) ? structuredClone(rng.pick(cur)) : randomScalar(rng, keys));
        break;
      case 5:
        if (Array.isArray(cur) && cur.length) {
          const n = 1 + rng.below(cur.length < 50 ? 200 : 3);
          for (let i = 0; i < n; i++) cur.push(structuredClone(cur[rng.below(cur.length)]));
        } else {
          s.set([cur]);
        }
        break;
      case 6: {
        // move a subtree elsewhere (type confusion between sibling fields)
        const other = rng.pick(all).get();
        s.set(structuredClone(other));
        break;
      }
      default:
        if (cur !== null && typeof cur === 'object') s.set(Array.isArray(cur) ? Object.fromEntries(cur.map((x, i) => [String(i), x])) : Object.values(cur));
        else s.set(randomScalar(rng, keys));
    }
  }
  return root.v;
}

/** The seed of this run: FUZZ_SEED when set, else the test's fixed default. */
export function fuzzSeed(fallback: number): number {
  const env = process.env.FUZZ_SEED;
  return env !== undefined && env !== '' ? Number(env) >>> 0 : fallback;
}

/** Iterations scaled by FUZZ_SCALE (default 1). */
export function iterations(n: number): number {
  const k = Number(process.env.FUZZ_SCALE ?? '1');
  return Math.max(1, Math.round(n * (Number.isFinite(k) && k > 0 ? k : 1)));
}

/**
 * Runs `body(rng, i)` n times from one seed. A failing iteration throws an error naming
 * the target, the seed and the iteration, with the input (what `body` last passed to
 * `record`) written to a temporary file.
 */
export async function fuzzLoop(
  target: string,
  seed: number,
  n: number,
  body: (rng: Rng, i: number, record: (input: unknown) => void) => void | Promise<void>,
): Promise<{ runs: number }> {
  const rng = new Rng(seed);
  let last: unknown;
  const record = (input: unknown) => {
    last = input;
  };
  for (let i = 0; i < n; i++) {
    try {
      await body(rng, i, record);
    } catch (e) {
      const dir = mkdtempSync(join(tmpdir(), `fuzz-${target}-`));
      const file = join(dir, `seed-${seed}-iteration-${i}`);
      writeFileSync(
        file,
        last instanceof Uint8Array ? last : typeof last === 'string' ? last : JSON.stringify(last, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v)),
      );
      const why = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
      throw new Error(`fuzz ${target}: iteration ${i} of seed ${seed} failed (replay: FUZZ_SEED=${seed}); input in ${file}\n${why}`);
    }
  }
  return { runs: n };
}

/** Passes when `e` is an InternVLError with one of the codes; rethrows anything else. */
export function expectTyped(e: unknown, codes: readonly InternVLErrorCode[]): void {
  if (e instanceof InternVLError && codes.includes(e.code)) {
    if (typeof e.message !== 'string' || e.message.length === 0) throw new Error(`${e.code} with an empty message`);
    return;
  }
  throw e instanceof Error ? e : new Error(`non-Error thrown: ${String(e)}`);
}
