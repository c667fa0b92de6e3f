/**
 * The two Hub metadata calls a pull needs:
 *
 * - `GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true` → the commit the
 *   revision points at (`sha`) and every file (`siblings[].rfilename`) with its size and
 *   id: `lfs.sha256` for LFS files, `blobId` (git blob sha1) for the others. Those ids name
 *   the blobs in the cache, exactly as huggingface_hub names them from the ETag.
 * - `HEAD {endpoint}/{repo}/resolve/{commit}/{path}` for a file the listing gave no id or
 *   size for (some mirrors): `X-Linked-Etag`/`ETag` and `X-Linked-Size`/`Content-Length`,
 *   read before any redirect to a CDN.
 */
import type { ModelRef } from './repoId.js';
import { isCommitHash } from './repoId.js';
import type { HubSettings } from './settings.js';
import { type RequestContext, type RetryPolicy, hubError, readBody, request, withRetries } from './http.js';
import { InternVLError } from '../errors.js';

/** One file of a commit, as the cache stores it. */
export interface RepoFile {
  path: string;
  size: number;
  /** The blob's name: a sha256 (64 hex, LFS) or a git blob sha1 (40 hex). */
  etag: string;
}

export interface RepoListing {
  commit: string;
  /** Every file path in the commit. */
  paths: string[];
  /** What the listing says about each file (id, size), when it says it. */
  meta: Map<string, { size?: number; etag?: string }>;
}

interface ApiSibling {
  rfilename?: unknown;
  size?: unknown;
  blobId?: unknown;
  lfs?: { sha256?: unknown; size?: unknown } | null;
}

/** `W/"abc"` or `"abc"` → `abc`. */
export function normalizeEtag(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (typeof v !== 'string' || v === '') return undefined;
  return v.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

export function fileUrl(endpoint: string, repo: string, revision: string, path: string): string {
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

function context(settings: HubSettings, ref: ModelRef, path?: string): RequestContext {
  return { endpoint: settings.endpoint, repo: ref.repo, revision: ref.revision, authenticated: settings.token !== undefined, ...(path ? { path } : {}) };
}

function origin(settings: HubSettings): string {
  return new URL(settings.endpoint).origin;
}

/** The commit `ref.revision` points at now and the files in it. */
export async function fetchListing(settings: HubSettings, ref: ModelRef, policy: RetryPolicy, signal: AbortSignal | undefined): Promise<RepoListing> {
  const url = `${settings.endpoint}/api/models/${ref.repo}/revision/${encodeURIComponent(ref.revision)}?blobs=true`;
  const json = await withRetries(
    async () => {
      const res = await request(url, { token: settings.token, tokenOrigin: origin(settings), signal, timeoutMs: settings.timeoutMs, headers: { accept: 'application/json' } });
      if (res.status !== 200) {
        res.body.resume();
        throw hubError(res, context(settings, ref));
      }
      const body = await readBody(res, signal);
      try {
        return JSON.parse(body.toString('utf8')) as { sha?: unknown; siblings?: unknown };
      } catch (e) {
        throw new InternVLError('ERR_HUB_NETWORK', `${url} did not return JSON`, { cause: e });
      }
    },
    policy,
    signal,
  );
  const commit = json.sha;
  if (typeof commit !== 'string' || !isCommitHash(commit) || !Array.isArray(json.siblings)) {
    throw new InternVLError('ERR_HUB_NETWORK', `${url} returned an unexpected answer (no commit sha or file list)`);
  }
  if (isCommitHash(ref.revision) && commit !== ref.revision) {
    throw new InternVLError('ERR_HUB_NETWORK', `${url} answered for commit ${commit}, not the ${ref.revision} asked for`);
  }
  const paths: string[] = [];
  const meta = new Map<string, { size?: number; etag?: string }>();
  for (const s of json.siblings as ApiSibling[]) {
    if (typeof s?.rfilename !== 'string') continue;
    paths.push(s.rfilename);
    const lfs = s.lfs && typeof s.lfs.sha256 === 'string' ? s.lfs : undefined;
    const size = lfs && typeof lfs.size === 'number' ? lfs.size : typeof s.size === 'number' ? s.size : undefined;
    const etag = lfs ? (lfs.sha256 as string) : typeof s.blobId === 'string' ? s.blobId : undefined;
    meta.set(s.rfilename, { ...(size !== undefined ? { size } : {}), ...(etag !== undefined ? { etag } : {}) });
  }
  return { commit, paths, meta };
}

/** Size and blob id of one file from the resolve endpoint's headers (for listings without them). */
export async function fetchFileMeta(
  settings: HubSettings,
  ref: ModelRef,
  commit: string,
  path: string,
  policy: RetryPolicy,
  signal: AbortSignal | undefined,
): Promise<RepoFile> {
  const url = fileUrl(settings.endpoint, ref.repo, commit, path);
  return withRetries(
    async () => {
      const res = await request(url, {
        method: 'HEAD',
        token: settings.token,
        tokenOrigin: origin(settings),
        signal,
        timeoutMs: settings.timeoutMs,
        redirects: 'same-origin',
        headers: { 'accept-encoding': 'identity' },
      });
      res.body.resume();
      if (res.status >= 400) throw hubError(res, context(settings, ref, path));
      const etag = normalizeEtag(res.headers['x-linked-etag']) ?? normalizeEtag(res.headers.etag);
      const sizeHeader = res.headers['x-linked-size'] ?? res.headers['content-length'];
      const size = Number(Array.isArray(sizeHeader) ? sizeHeader[0] : sizeHeader);
      if (!etag || !Number.isSafeInteger(size) || size < 0) {
        throw new InternVLError('ERR_HUB_NETWORK', `${url} gave no ETag or size for ${path}`);
      }
      return { path, size, etag };
    },
    policy,
    signal,
  );
}
