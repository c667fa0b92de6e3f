/**
 * The HTTP layer of Hub downloads (node:http/https, no dependency):
 *
 * - redirects followed by hand, so the token (`Authorization: Bearer`) goes to the Hub's
 *   own origin only, never to the CDN a file redirects to;
 * - a stall timeout: no byte for `timeoutMs` (before the headers or mid-body) fails the
 *   request as retryable;
 * - AbortSignal: aborts the request at once and rejects with ERR_ABORTED;
 * - Hub error responses turned into typed errors (X-Error-Code: RepoNotFound,
 *   RevisionNotFound, EntryNotFound, GatedRepo; else by status), and what is worth retrying
 *   (network failures, 408/429/5xx) marked {@link RetryableError}, with backoff helpers.
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { InternVLError } from '../errors.js';
import { packageRoot } from '../native.js';

/** A failure worth trying again (a dropped connection, a stall, HTTP 408/429/5xx). */
export class RetryableError extends Error {
  constructor(
    message: string,
    /** The server's Retry-After, when it gave one. */
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RetryableError';
  }
}

export interface RequestOptions {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** Sent as `Authorization: Bearer` to `tokenOrigin` only. */
  token?: string;
  tokenOrigin?: string;
  signal?: AbortSignal;
  /** No byte for this long (connect, headers or body) fails the request as retryable. */
  timeoutMs: number;
  /** 'all' (downloads) or 'same-origin': stop at a redirect to another host and return it (metadata). */
  redirects?: 'all' | 'same-origin';
}

export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  /** The URL that answered (after redirects). */
  url: string;
  body: IncomingMessage;
}

let userAgent: string | undefined;
function agentName(): string {
  if (userAgent === undefined) {
    let version = '0';
    try {
      version = (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      // a bundled copy without package.json: the name alone identifies us
    }
    userAgent = `internvl-node/${version}; node/${process.versions.node}`;
  }
  return userAgent;
}

/** ERR_ABORTED for an aborted signal, keeping the reason as the cause. */
export function abortedError(signal: AbortSignal | undefined): InternVLError {
  const reason = signal?.reason as unknown;
  if (reason instanceof InternVLError && reason.code === 'ERR_ABORTED') return reason;
  return new InternVLError('ERR_ABORTED', 'The download was aborted (partial files are kept: pulling again resumes them)', { cause: reason });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortedError(signal);
}

/** A network-level failure (reset, refused, DNS, stall) as retryable, an abort as ERR_ABORTED. */
export function networkError(e: unknown, url: string, signal: AbortSignal | undefined): Error {
  if (signal?.aborted) return abortedError(signal);
  if (e instanceof InternVLError || e instanceof RetryableError) return e;
  const err = e as NodeJS.ErrnoException;
  return new RetryableError(`${err?.code ?? 'network error'} (${err?.message ?? String(e)}) from ${url}`, undefined, { cause: e });
}

function once(url: URL, options: RequestOptions, headers: Record<string, string>): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, { method: options.method ?? 'GET', headers, ...(options.signal ? { signal: options.signal } : {}) }, resolve);
    req.setTimeout(options.timeoutMs, () => {
      req.destroy(new RetryableError(`no data for ${Math.round(options.timeoutMs / 1000)} s from ${url.origin}`));
    });
    req.on('error', (e) => reject(networkError(e, url.href, options.signal)));
    req.end();
  });
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;

/** One request, redirects followed as `options.redirects` says; any status comes back (see {@link hubError}). */
export async function request(url: string, options: RequestOptions): Promise<Response> {
  throwIfAborted(options.signal);
  let current = new URL(url);
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'user-agent': agentName(), ...options.headers };
    if (options.token && current.origin === options.tokenOrigin) headers.authorization = `Bearer ${options.token}`;
    const res = await once(current, options, headers);
    const location = res.headers.location;
    const status = res.statusCode ?? 0;
    if (!REDIRECTS.has(status) || !location) return { status, headers: res.headers, url: current.href, body: res };
    const next = new URL(location, current);
    if (options.redirects === 'same-origin' && next.origin !== current.origin) {
      return { status, headers: res.headers, url: current.href, body: res };
    }
    res.resume(); // discard the redirect's body
    if (hop >= MAX_REDIRECTS) throw new InternVLError('ERR_HUB_NETWORK', `Too many redirects from ${url}`);
    current = next;
  }
}

/** Reads a whole (small) body; a connection lost on the way is retryable. */
export async function readBody(res: Response, signal: AbortSignal | undefined, limit = 64 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of res.body) {
      n += (chunk as Buffer).length;
      if (n > limit) throw new InternVLError('ERR_HUB_NETWORK', `The response from ${res.url} is larger than ${limit} bytes`);
      chunks.push(chunk as Buffer);
    }
  } catch (e) {
    throw networkError(e, res.url, signal);
  }
  return Buffer.concat(chunks);
}

/** What a request was for, to word its errors. */
export interface RequestContext {
  endpoint: string;
  repo: string;
  revision: string;
  /** The file, for downloads. */
  path?: string;
  /** Whether a token was sent. */
  authenticated: boolean;
}

function retryAfter(headers: IncomingHttpHeaders): number | undefined {
  const v = headers['retry-after'];
  if (typeof v !== 'string') return undefined;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

/** The error a non-2xx Hub response means (typed, worded for the user), or RetryableError for 408/429/5xx. */
export function hubError(res: Pick<Response, 'status' | 'headers' | 'url'>, ctx: RequestContext): Error {
  const { status, headers } = res;
  const errorCode = headers['x-error-code'];
  const serverSays = typeof headers['x-error-message'] === 'string' ? ` (${headers['x-error-message']})` : '';
  const where = `${ctx.repo}@${ctx.revision}`;
  const tokenHint = ctx.authenticated
    ? 'the token in HF_TOKEN is invalid or its account has no access'
    : 'set HF_TOKEN to a Hugging Face access token (https://huggingface.co/settings/tokens) of an account with access';
  if (errorCode === 'GatedRepo') {
    return new InternVLError(
      'ERR_HUB_AUTH',
      `${ctx.repo} is a gated model: accept its conditions at ${ctx.endpoint}/${ctx.repo} while logged in, then ${ctx.authenticated ? 'retry (the token in HF_TOKEN has no access yet)' : 'set HF_TOKEN to an access token of that account'}${serverSays}`,
    );
  }
  if (errorCode === 'RepoNotFound') {
    return new InternVLError(
      'ERR_HUB_NOT_FOUND',
      `Model ${ctx.repo} was not found on ${ctx.endpoint}${ctx.authenticated ? '' : ' (if it is private, set HF_TOKEN to an access token with access to it)'}${serverSays}`,
    );
  }
  if (errorCode === 'RevisionNotFound') {
    return new InternVLError('ERR_HUB_NOT_FOUND', `Revision ${JSON.stringify(ctx.revision)} of ${ctx.repo} was not found on ${ctx.endpoint}${serverSays}`);
  }
  if (errorCode === 'EntryNotFound' || (status === 404 && ctx.path !== undefined)) {
    return new InternVLError('ERR_HUB_NOT_FOUND', `${ctx.path ?? 'A file'} was not found in ${where} on ${ctx.endpoint}${serverSays}`);
  }
  if (status === 404) return new InternVLError('ERR_HUB_NOT_FOUND', `Model ${where} was not found on ${ctx.endpoint}${serverSays}`);
  if (status === 401 || status === 403) {
    return new InternVLError('ERR_HUB_AUTH', `${ctx.endpoint} refused access to ${ctx.repo} (HTTP ${status}): ${tokenHint}${serverSays}`);
  }
  if (status === 408 || status === 429 || status >= 500) {
    return new RetryableError(`HTTP ${status} from ${res.url}${serverSays}`, retryAfter(headers));
  }
  return new InternVLError('ERR_HUB_NETWORK', `Unexpected HTTP ${status} from ${res.url}${serverSays}`);
}

export interface RetryPolicy {
  /** Retries after the first attempt (default 5). */
  retries: number;
  /** First backoff (default 1 s); doubles per retry with jitter, up to maxDelayMs. */
  baseDelayMs: number;
  /** Longest backoff (default 30 s; a Retry-After up to 60 s is honoured). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 5, baseDelayMs: 1000, maxDelayMs: 30_000 };

/** How long to wait before retry number `attempt` (1-based): exponential with ±25% jitter, or the server's Retry-After. */
export function backoffMs(attempt: number, policy: RetryPolicy, error?: unknown): number {
  const asked = error instanceof RetryableError ? error.retryAfterMs : undefined;
  if (asked !== undefined) return Math.min(asked, 60_000);
  const base = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return base * (0.75 + Math.random() * 0.5);
}

/** Waits, rejecting with ERR_ABORTED as soon as the signal fires. */
export async function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await delay(ms, undefined, signal ? { signal } : undefined);
  } catch {
    throw abortedError(signal);
  }
}

/** The retries ran out: the last retryable failure as ERR_HUB_NETWORK. */
export function gaveUp(e: unknown, attempts: number): InternVLError {
  if (e instanceof InternVLError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new InternVLError('ERR_HUB_NETWORK', `Giving up after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${msg}`, { cause: e });
}

/** Runs `fn` until it succeeds, fails for good (anything not retryable), or the retries run out. */
export async function withRetries<T>(fn: () => Promise<T>, policy: RetryPolicy, signal: AbortSignal | undefined): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(signal);
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof RetryableError) || signal?.aborted) throw signal?.aborted ? abortedError(signal) : e;
      if (attempt > policy.retries) throw gaveUp(e, attempt);
      await sleep(backoffMs(attempt, policy, e), signal);
    }
  }
}
