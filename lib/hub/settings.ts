/**
 * Where the Hub is and where its files go, read from the environment the way
 * huggingface_hub reads it, so both tools share one cache and one login:
 *
 * | variable | meaning | default |
 * |---|---|---|
 * | HF_ENDPOINT | Hub base URL (a mirror, a private Hub) | https://huggingface.co |
 * | HF_HUB_CACHE (legacy HUGGINGFACE_HUB_CACHE) | the cache folder | $HF_HOME/hub |
 * | HF_HOME | token + cache root | $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface |
 * | HF_TOKEN (legacy HUGGING_FACE_HUB_TOKEN) | access token (gated/private repos) | the file $HF_TOKEN_PATH, else $HF_HOME/token |
 * | HF_HUB_OFFLINE | 1/true/yes/on: never touch the network, resolve from the cache only | off |
 * | HF_HUB_DOWNLOAD_TIMEOUT | seconds without a byte before a request counts as stalled | 30 |
 *
 * Options passed in code win over the environment.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { InternVLError } from '../errors.js';

/** Where and how Hub models are fetched (defaults from the HF_* environment variables). */
export interface HubOptions {
  /** Hub base URL (default $HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /** Cache folder in huggingface_hub's layout (default $HF_HUB_CACHE, else $HF_HOME/hub). */
  cacheDir?: string;
  /** Access token; `false` sends none even when HF_TOKEN is set (default $HF_TOKEN, else the saved login). */
  token?: string | false;
  /** Resolve from the cache only, never the network (default $HF_HUB_OFFLINE). */
  offline?: boolean;
  /** Milliseconds without progress before a request is retried (default $HF_HUB_DOWNLOAD_TIMEOUT s, else 30 s). */
  timeoutMs?: number;
  /** Environment to read (default process.env; tests pass their own). */
  env?: NodeJS.ProcessEnv;
}

/** The settings every Hub operation works from. */
export interface HubSettings {
  endpoint: string;
  cacheDir: string;
  token: string | undefined;
  offline: boolean;
  timeoutMs: number;
}

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
const DEFAULT_TIMEOUT_MS = 30_000;

/** huggingface_hub's truthy spellings for boolean variables. */
export function envFlag(value: string | undefined): boolean {
  return value !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(value.trim().toUpperCase());
}

function nonEmpty(value: string | undefined): string | undefined {
  return value !== undefined && value.trim() !== '' ? value.trim() : undefined;
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function hfHome(env: NodeJS.ProcessEnv): string {
  const home = nonEmpty(env.HF_HOME);
  if (home) return resolve(expandHome(home));
  const xdg = nonEmpty(env.XDG_CACHE_HOME);
  return resolve(expandHome(xdg ?? join(homedir(), '.cache')), 'huggingface');
}

function savedToken(env: NodeJS.ProcessEnv): string | undefined {
  const path = nonEmpty(env.HF_TOKEN_PATH) ?? join(hfHome(env), 'token');
  try {
    return nonEmpty(readFileSync(expandHome(path), 'utf8'));
  } catch {
    return undefined; // not logged in
  }
}

export function hubSettings(options: HubOptions = {}): HubSettings {
  const env = options.env ?? process.env;
  const endpoint = (options.endpoint ?? nonEmpty(env.HF_ENDPOINT) ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  try {
    const url = new URL(endpoint);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('not http(s)');
  } catch {
    throw new InternVLError('ERR_INVALID_ARG', `Expected an http(s) URL for the Hub endpoint (HF_ENDPOINT) but received ${JSON.stringify(endpoint)}`);
  }
  const cacheDir = resolve(
    expandHome(options.cacheDir ?? nonEmpty(env.HF_HUB_CACHE) ?? nonEmpty(env.HUGGINGFACE_HUB_CACHE) ?? join(hfHome(env), 'hub')),
  );
  const token =
    options.token === false ? undefined : (options.token ?? nonEmpty(env.HF_TOKEN) ?? nonEmpty(env.HUGGING_FACE_HUB_TOKEN) ?? savedToken(env));
  const offline = options.offline ?? envFlag(env.HF_HUB_OFFLINE);
  const envTimeout = Number(nonEmpty(env.HF_HUB_DOWNLOAD_TIMEOUT));
  const timeoutMs = options.timeoutMs ?? (Number.isFinite(envTimeout) && envTimeout > 0 ? envTimeout * 1000 : DEFAULT_TIMEOUT_MS);
  return { endpoint, cacheDir, token, offline, timeoutMs };
}
