/**
 * Generation options: the reference defaults (greedy unless doSample; when sampling,
 * temperature 1.0, top-k 50, top-p 1.0 as the LLMs' GenerationConfig) and
 * sharp-style validation that names the option, the expected range and the value.
 */
import { invalidArg } from './errors.js';

/** Sampling and stopping options of a chat call (`generation`). */
export interface GenerationOptions {
  /** Tokens to generate at most (the card uses 1024). */
  maxNewTokens?: number;
  /** Sample instead of greedy decoding. Setting temperature/topK/topP alone does not turn sampling on. */
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  /** HF-style repetition penalty (1 = off). */
  repetitionPenalty?: number;
  /** Seed for sampling; the same seed, prompt and options give the same tokens. */
  seed?: number;
  /** Extra strings that end generation (the template's separator always does). */
  stop?: string[];
}

export type ResolvedGeneration = Required<Omit<GenerationOptions, 'stop'>> & { stop: string[] };

/** The generation settings used where a request leaves one out (greedy, as the model card's examples). */
export const GENERATION_DEFAULTS: ResolvedGeneration = {
  maxNewTokens: 1024,
  doSample: false,
  temperature: 1.0,
  topK: 50,
  topP: 1.0,
  repetitionPenalty: 1.0,
  seed: 0,
  stop: [],
};

const KNOWN = new Set(Object.keys(GENERATION_DEFAULTS));

function intIn(name: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw invalidArg(name, `integer between ${lo} and ${hi}`, v);
  }
  return v;
}

function numIn(name: string, v: unknown, lo: number, hi: number, loOpen = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v > hi || (loOpen ? v <= lo : v < lo)) {
    throw invalidArg(name, `number ${loOpen ? 'greater than' : 'between'} ${lo}${loOpen ? ` and at most ${hi}` : ` and ${hi}`}`, v);
  }
  return v;
}

/** Fills defaults and validates; throws InternVLError('ERR_INVALID_ARG') on the first bad option. */
export function resolveGeneration(options: GenerationOptions | undefined, prefix = 'generation'): ResolvedGeneration {
  if (options === undefined || options === null) return { ...GENERATION_DEFAULTS };
  if (typeof options !== 'object' || Array.isArray(options)) throw invalidArg(prefix, 'object', options);
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw invalidArg(`${prefix}.${key}`, `one of the options ${[...KNOWN].join(', ')}`, key);
  }
  const o = { ...GENERATION_DEFAULTS, ...stripUndefined(options) };
  const p = (k: string) => `${prefix}.${k}`;
  if (typeof o.doSample !== 'boolean') throw invalidArg(p('doSample'), 'boolean', o.doSample);
  const stop = o.stop;
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw invalidArg(p('stop'), 'array of non-empty strings', stop);
  }
  return {
    maxNewTokens: intIn(p('maxNewTokens'), o.maxNewTokens, 1, 1 << 20),
    doSample: o.doSample,
    temperature: numIn(p('temperature'), o.temperature, 0, 100, true),
    topK: intIn(p('topK'), o.topK, 0, 1 << 20),
    topP: numIn(p('topP'), o.topP, 0, 1, true),
    repetitionPenalty: numIn(p('repetitionPenalty'), o.repetitionPenalty, 0, 100, true),
    seed: intIn(p('seed'), o.seed, 0, Number.MAX_SAFE_INTEGER),
    stop: [...stop],
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
