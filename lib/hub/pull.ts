/**
 * Getting a Hub model into the local cache: what `internvl pull` and
 * `InternVL.load('org/name')` do.
 *
 * ```ts
 * const r = await pullModel('OpenGVLab/InternVL2-1B', { onProgress: (p) => ... });
 * r.dir  // ~/.cache/huggingface/hub/models--OpenGVLab--InternVL2-1B/snapshots/<commit>
 * ```
 *
 * 1. ask the Hub which commit the revision is and what files it has (api.ts);
 * 2. keep the files the runtime reads (files.ts), note which blobs are already cached
 *    or partly downloaded, and check the disk has room for the rest;
 * 3. download the rest, `concurrency` files at a time, each resumable and verified
 *    (download.ts), stopping all of them at the first failure or on abort;
 * 4. link the files into `snapshots/<commit>/` and record `refs/<revision>` (cache.ts).
 *
 * Offline (HF_HUB_OFFLINE=1) nothing touches the network: the revision resolves through
 * refs/ and the snapshot must already hold what the runtime needs, else ERR_HUB_OFFLINE.
 * Several processes pulling the same model at once are not coordinated (no lock files):
 * their writes to a shared `.incomplete` would fail verification, not pass as complete.
 */
import { mkdir, readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { InternVLError } from '../errors.js';
import { type RepoFile, fetchFileMeta, fetchListing, fileUrl } from './api.js';
import { RepoCache } from './cache.js';
import { type BlobTask, downloadBlob } from './download.js';
import { type FileSet, missingFiles, selectFiles } from './files.js';
import { DEFAULT_RETRY, type RetryPolicy, abortedError, throwIfAborted } from './http.js';
import { type ModelRef, requireModelRef } from './repoId.js';
import { type HubOptions, type HubSettings, hubSettings } from './settings.js';

/** Options of {@link pullModel}: revision, which files, concurrency, progress, abort. */
export interface PullOptions extends HubOptions {
  /** Overrides the `@revision` in the model id (default 'main'). */
  revision?: string;
  /** 'model' (default): everything InternVL.load reads; 'tokenizer': config + tokenizer files only. */
  files?: FileSet;
  /** Files downloaded at once (default 8). */
  concurrency?: number;
  signal?: AbortSignal;
  /** Called as bytes arrive (often: throttle any drawing). */
  onProgress?: (progress: PullProgress) => void;
  /** Retries per request (default 5, backoff from 1 s doubling up to 30 s). */
  retry?: Partial<RetryPolicy>;
  /** Free bytes on the disk holding `dir` (default fs.statfs): lets tests simulate a full disk. */
  freeBytes?: (dir: string) => Promise<number>;
  /** When the Hub cannot be reached, use a complete cached snapshot of the revision instead (InternVL.load does). */
  fallbackToCache?: boolean;
}

/** Download progress reported while pulling (bytes and files). */
export interface PullProgress {
  /** Bytes of the selected files on disk: cached, resumed and downloaded so far. */
  bytesDone: number;
  bytesTotal: number;
  /** What was on disk before this pull fetched anything (bytesDone − bytesAtStart = this pull's transfer). */
  bytesAtStart: number;
  filesDone: number;
  filesTotal: number;
}

/** One file of a pulled model: where it is and whether it was downloaded now. */
export interface PulledFile {
  path: string;
  size: number;
  /** Already complete in the cache (nothing fetched). */
  cached: boolean;
  /** An earlier partial download was continued. */
  resumed: boolean;
}

/** What {@link pullModel} resolves with: the snapshot directory, commit and files. */
export interface PullResult {
  repo: string;
  /** The revision asked for. */
  revision: string;
  commit: string;
  /** The snapshot directory: what InternVL.load reads. */
  dir: string;
  /** True when resolved from the cache without the Hub (offline, or the Hub unreachable with fallbackToCache). */
  fromCache: boolean;
  files: PulledFile[];
  bytesTotal: number;
  /** Bytes received over the network. */
  bytesFetched: number;
}

function policyOf(options: PullOptions): RetryPolicy {
  return { ...DEFAULT_RETRY, ...options.retry };
}

async function defaultFreeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

function formatGiB(n: number): string {
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${n} bytes`;
}

/** The snapshot of `ref` already in the cache, if complete for `set`; else ERR_HUB_OFFLINE saying what is missing. */
async function fromCache(cache: RepoCache, ref: ModelRef, set: FileSet, why: string): Promise<PullResult> {
  const commit = await cache.readRef(ref.revision);
  const pullHint = `run "internvl pull ${ref.repo}${ref.revision === 'main' ? '' : `@${ref.revision}`}" with network access first`;
  if (!commit) {
    throw new InternVLError('ERR_HUB_OFFLINE', `${ref.repo}@${ref.revision} is not in the cache (${cache.root}) and ${why}: ${pullHint}`);
  }
  const dir = cache.snapshotDir(commit);
  const missing = await missingFiles(dir, set);
  if (missing.length > 0) {
    throw new InternVLError('ERR_HUB_OFFLINE', `The cached snapshot ${dir} lacks ${missing.join('; ')} and ${why}: ${pullHint}`);
  }
  const names = await readdir(dir);
  const files: PulledFile[] = [];
  for (const path of names.sort()) {
    const s = await stat(join(dir, path)).catch(() => undefined);
    if (s?.isFile()) files.push({ path, size: s.size, cached: true, resumed: false });
  }
  const bytesTotal = files.reduce((a, f) => a + f.size, 0);
  return { repo: ref.repo, revision: ref.revision, commit, dir, fromCache: true, files, bytesTotal, bytesFetched: 0 };
}

/** Runs `fn` over `items`, `n` at a time; the first failure aborts the rest and is what rejects. */
async function pool<T>(items: T[], n: number, fn: (item: T, signal: AbortSignal) => Promise<void>, outer: AbortSignal | undefined): Promise<void> {
  const stop = new AbortController();
  const signal = outer ? AbortSignal.any([outer, stop.signal]) : stop.signal;
  let next = 0;
  let failed = false;
  let first: unknown;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++];
      try {
        await fn(item, signal);
      } catch (e) {
        if (!failed) {
          failed = true;
          first = outer?.aborted ? abortedError(outer) : e;
          stop.abort(e);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed) throw first;
}

async function describe(settings: HubSettings, ref: ModelRef, commit: string, listing: Awaited<ReturnType<typeof fetchListing>>, set: FileSet, policy: RetryPolicy, signal: AbortSignal | undefined): Promise<RepoFile[]> {
  const paths = selectFiles(ref.repo, listing.paths, set);
  const files: RepoFile[] = [];
  for (const path of paths) {
    const m = listing.meta.get(path);
    files.push(m?.etag !== undefined && m.size !== undefined ? { path, size: m.size, etag: m.etag } : await fetchFileMeta(settings, ref, commit, path, policy, signal));
  }
  return files;
}

/** Downloads what the runtime needs of a Hub model into the cache (see the module comment). */
export async function pullModel(model: string, options: PullOptions = {}): Promise<PullResult> {
  const parsed = requireModelRef(model);
  const ref: ModelRef = options.revision !== undefined ? requireModelRef(`${parsed.repo}@${options.revision}`) : parsed;
  const settings = hubSettings(options);
  const set = options.files ?? 'model';
  const concurrency = options.concurrency ?? 8;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new InternVLError('ERR_INVALID_ARG', `Expected integer between 1 and 64 for concurrency but received ${String(concurrency)}`);
  }
  const { signal } = options;
  const policy = policyOf(options);
  const cache = new RepoCache(settings.cacheDir, ref.repo);
  throwIfAborted(signal);

  if (settings.offline) return fromCache(cache, ref, set, 'HF_HUB_OFFLINE is set');

  let listing: Awaited<ReturnType<typeof fetchListing>>;
  try {
    // With a usable cached copy to fall back on, an unreachable Hub should not cost a minute of retries.
    const cachedUsable = options.fallbackToCache === true && (await fromCache(cache, ref, set, '').then(() => true, () => false));
    listing = await fetchListing(settings, ref, cachedUsable ? { ...policy, retries: 0 } : policy, signal);
  } catch (e) {
    if (options.fallbackToCache && e instanceof InternVLError && e.code === 'ERR_HUB_NETWORK') {
      return fromCache(cache, ref, set, `the Hub could not be reached (${e.message})`);
    }
    throw e;
  }
  const { commit } = listing;
  const files = await describe(settings, ref, commit, listing, set, policy, signal);

  // What is already here: complete blobs, and partial ones to continue.
  const blobs = new Map<string, RepoFile>(); // one download per blob, even if two paths share it
  for (const f of files) blobs.set(f.etag, f);
  const state = new Map<string, { cached: boolean; onDisk: number; resumed: boolean }>();
  for (const [etag, f] of blobs) {
    const complete = (await stat(cache.blobPath(etag)).catch(() => undefined))?.size === f.size;
    const partial = complete ? 0 : Math.min(f.size, (await stat(cache.incompletePath(etag)).catch(() => undefined))?.size ?? 0);
    state.set(etag, { cached: complete, onDisk: complete ? f.size : partial, resumed: false });
  }
  const todo = [...blobs.values()].filter((f) => !state.get(f.etag)?.cached).sort((a, b) => b.size - a.size);

  await mkdir(cache.blobsDir, { recursive: true });
  const needed = todo.reduce((a, f) => a + f.size - (state.get(f.etag)?.onDisk ?? 0), 0);
  if (needed > 0) {
    const free = await (options.freeBytes ?? defaultFreeBytes)(cache.blobsDir);
    if (needed > free) {
      throw new InternVLError(
        'ERR_DISK_SPACE',
        `${ref.repo}@${ref.revision} needs ${formatGiB(needed)} more in ${cache.blobsDir} but only ${formatGiB(free)} is free (set HF_HUB_CACHE to a larger disk)`,
      );
    }
  }

  const bytesTotal = [...blobs.values()].reduce((a, f) => a + f.size, 0);
  const bytesAtStart = [...state.values()].reduce((a, s) => a + s.onDisk, 0);
  let bytesDone = bytesAtStart;
  let filesDone = [...state.values()].filter((s) => s.cached).length;
  const report = () => options.onProgress?.({ bytesDone, bytesTotal, bytesAtStart, filesDone, filesTotal: blobs.size });
  report();

  let bytesFetched = 0;
  const tokenOrigin = new URL(settings.endpoint).origin;
  await pool(
    todo,
    concurrency,
    async (file, poolSignal) => {
      const s = state.get(file.etag) as { cached: boolean; onDisk: number; resumed: boolean };
      const task: BlobTask = { file, url: fileUrl(settings.endpoint, ref.repo, commit, file.path), blob: cache.blobPath(file.etag), incomplete: cache.incompletePath(file.etag) };
      const r = await downloadBlob(task, {
        ctx: { endpoint: settings.endpoint, repo: ref.repo, revision: ref.revision, path: file.path, authenticated: settings.token !== undefined },
        token: settings.token,
        tokenOrigin,
        timeoutMs: settings.timeoutMs,
        policy,
        signal: poolSignal,
        onProgress: (onDisk) => {
          bytesDone += onDisk - s.onDisk;
          s.onDisk = onDisk;
          report();
        },
      });
      s.resumed = r.resumed;
      bytesFetched += r.fetched;
      filesDone++;
      report();
    },
    signal,
  );

  for (const f of files) await cache.linkSnapshotFile(commit, f.path, f.etag);
  await cache.writeRef(ref.revision, commit);
  return {
    repo: ref.repo,
    revision: ref.revision,
    commit,
    dir: cache.snapshotDir(commit),
    fromCache: false,
    files: files.map((f) => {
      const s = state.get(f.etag);
      return { path: f.path, size: f.size, cached: s?.cached ?? false, resumed: s?.resumed ?? false };
    }),
    bytesTotal,
    bytesFetched,
  };
}

/**
 * The local directory for a Hub model, downloading what is missing (offline: from the
 * cache only). When the Hub is unreachable a complete cached snapshot is used.
 */
export async function resolveModel(model: string, options: PullOptions = {}): Promise<string> {
  try {
    return (await pullModel(model, { fallbackToCache: true, ...options })).dir;
  } catch (e) {
    // `org/name` may have been meant as a relative path: say that there is none either.
    if (e instanceof InternVLError && e.code === 'ERR_HUB_NOT_FOUND' && e.message.startsWith('Model ')) {
      throw new InternVLError(e.code, `${e.message}; there is no local directory ${JSON.stringify(model)} either`, { cause: e });
    }
    throw e;
  }
}
