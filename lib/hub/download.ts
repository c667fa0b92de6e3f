/**
 * One file from the Hub into the cache's blobs/, resumable and verified:
 *
 * 1. bytes go to `blobs/<etag>.incomplete`; a retry (or a later pull) continues it with
 *    `Range: bytes=<have>-` — a 206 appends, a 200 (range ignored) starts over;
 * 2. the checksum is computed while streaming (the kept prefix is hashed once from disk):
 *    sha256 for LFS files (the etag is that sha256), the git blob sha1 for small files;
 * 3. only when the size and checksum match is the file renamed to `blobs/<etag>`, so a
 *    partial or corrupt download never passes as complete. A mismatch after a resume
 *    retries once from zero (the kept prefix may be the bad part); otherwise it is
 *    ERR_DOWNLOAD_INTEGRITY.
 *
 * Connection drops, stalls and 408/429/5xx are retried with backoff; the count resets
 * whenever an attempt made progress, so a long download over a flaky link keeps going.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, rename, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { InternVLError } from '../errors.js';
import type { RepoFile } from './api.js';
import {
  type RequestContext,
  type RetryPolicy,
  RetryableError,
  backoffMs,
  gaveUp,
  hubError,
  networkError,
  request,
  sleep,
  throwIfAborted,
} from './http.js';

export interface BlobTask {
  file: RepoFile;
  url: string;
  /** Final path, `blobs/<etag>`. */
  blob: string;
  /** Work path, `blobs/<etag>.incomplete`. */
  incomplete: string;
}

export interface DownloadContext {
  ctx: RequestContext;
  token: string | undefined;
  tokenOrigin: string;
  timeoutMs: number;
  policy: RetryPolicy;
  signal: AbortSignal | undefined;
  /** Bytes of this file on disk so far (drops back when a bad partial is discarded). */
  onProgress(bytesOnDisk: number): void;
}

export interface BlobResult {
  /** Bytes received over the network for this file. */
  fetched: number;
  /** Whether an earlier partial download was continued. */
  resumed: boolean;
}

/** What the etag lets us check: sha256 (LFS), git blob sha1 (regular files), or the size only. */
function newDigest(file: RepoFile): { hash: Hash | undefined; expected: string | undefined } {
  if (/^[0-9a-f]{64}$/.test(file.etag)) return { hash: createHash('sha256'), expected: file.etag };
  if (/^[0-9a-f]{40}$/.test(file.etag)) {
    const hash = createHash('sha1');
    hash.update(`blob ${file.size}\0`);
    return { hash, expected: file.etag };
  }
  return { hash: undefined, expected: undefined };
}

async function hashPrefix(path: string, length: number, hash: Hash | undefined, signal: AbortSignal | undefined): Promise<void> {
  if (!hash || length === 0) return;
  const stream = createReadStream(path, { start: 0, end: length - 1, ...(signal ? { signal } : {}) });
  for await (const chunk of stream) hash.update(chunk as Buffer);
}

/** The body's chunks; a failure while receiving (reset, stall, abort) becomes retryable / ERR_ABORTED. */
async function* received(body: AsyncIterable<unknown>, url: string, signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body) yield chunk as Buffer;
  } catch (e) {
    throw networkError(e, url, signal);
  }
}

function diskError(e: unknown, path: string): unknown {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new InternVLError('ERR_DISK_SPACE', `The disk is full while writing ${path}`, { cause: e });
  return e;
}

async function sizeOf(path: string): Promise<number | undefined> {
  return (await stat(path).catch(() => undefined))?.size;
}

/** Content-Range `bytes 100-199/200` → 100. */
function rangeStart(header: string | undefined): number | undefined {
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(header ?? '');
  return m ? Number(m[1]) : undefined;
}

export async function downloadBlob(task: BlobTask, dc: DownloadContext): Promise<BlobResult> {
  const { file, url, incomplete } = task;
  const { signal } = dc;
  await mkdir(dirname(incomplete), { recursive: true });
  let digest = newDigest(file);
  let hashedUpTo = -1; // bytes of the .incomplete already in `digest` (-1: none yet)
  let fetched = 0;
  let resumed = false;
  let restartedClean = false;
  let failures = 0; // consecutive attempts that made no progress

  const startOver = async () => {
    await truncate(incomplete, 0).catch(() => undefined);
    digest = newDigest(file);
    hashedUpTo = 0;
    dc.onProgress(0);
  };

  for (;;) {
    throwIfAborted(signal);
    let have = (await sizeOf(incomplete)) ?? 0;
    if (have > file.size) {
      await startOver();
      have = 0;
    }
    if (hashedUpTo !== have) {
      digest = newDigest(file);
      await hashPrefix(incomplete, have, digest.hash, signal);
      hashedUpTo = have;
    }
    if (have > 0) resumed = true;
    dc.onProgress(have);

    let progressed = false;
    try {
      if (have < file.size) {
        const res = await request(url, {
          token: dc.token,
          tokenOrigin: dc.tokenOrigin,
          signal,
          timeoutMs: dc.timeoutMs,
          headers: { 'accept-encoding': 'identity', ...(have > 0 ? { range: `bytes=${have}-` } : {}) },
        });
        if (res.status === 206 && rangeStart(res.headers['content-range'] as string | undefined) !== have) {
          res.body.resume();
          await startOver();
          throw new RetryableError(`${url} answered a different range (${res.headers['content-range'] ?? 'none'}) than bytes=${have}-`);
        }
        if (res.status === 200 && have > 0) {
          await startOver(); // the server ignored Range: the body is the whole file
          have = 0;
        } else if (res.status !== 200 && res.status !== 206) {
          res.body.resume();
          if (res.status === 416) {
            await startOver(); // our partial is longer than the server's file: it cannot be a prefix
            throw new RetryableError(`${url} refused bytes=${have}- (HTTP 416)`);
          }
          throw hubError(res, dc.ctx);
        }
        const length = Number(res.headers['content-length']);
        if (Number.isFinite(length) && have + length !== file.size) {
          res.body.resume();
          throw new InternVLError(
            'ERR_DOWNLOAD_INTEGRITY',
            `${file.path}: the server sends ${have + length} bytes but the Hub lists ${file.size} (${url})`,
          );
        }
        const fh: FileHandle = await open(incomplete, have > 0 ? 'a' : 'w').catch((e) => Promise.reject(diskError(e, incomplete)));
        try {
          for await (const chunk of received(res.body, url, signal)) {
            if (have + chunk.length > file.size) {
              throw new InternVLError('ERR_DOWNLOAD_INTEGRITY', `${file.path}: the server sent more than the ${file.size} bytes the Hub lists (${url})`);
            }
            digest.hash?.update(chunk);
            await fh.write(chunk).catch((e) => Promise.reject(diskError(e, incomplete)));
            have += chunk.length;
            hashedUpTo = have;
            fetched += chunk.length;
            progressed = true;
            dc.onProgress(have);
          }
          await fh.sync();
        } finally {
          await fh.close();
        }
        if (have < file.size) throw new RetryableError(`${url}: the connection ended after ${have} of ${file.size} bytes`);
      }
    } catch (e) {
      if (!(e instanceof RetryableError) || signal?.aborted) throw signal?.aborted ? networkError(e, url, signal) : e;
      failures = progressed ? 1 : failures + 1;
      if (failures > dc.policy.retries) throw gaveUp(e, failures);
      await sleep(backoffMs(failures, dc.policy, e), signal);
      continue;
    }

    // have === file.size: check before the file may take its final name.
    if (file.size === 0) await writeFile(incomplete, '');
    const actual = digest.hash?.digest('hex');
    if (actual !== digest.expected) {
      await unlink(incomplete).catch(() => undefined);
      dc.onProgress(0);
      if (resumed && !restartedClean) {
        restartedClean = true; // the kept prefix may be what was wrong: one clean download
        resumed = false;
        hashedUpTo = -1;
        continue;
      }
      throw new InternVLError(
        'ERR_DOWNLOAD_INTEGRITY',
        `${file.path} failed its checksum: expected ${digest.expected}, got ${actual} (${file.size} bytes from ${url}); the partial file was deleted, run the pull again`,
      );
    }
    await rename(incomplete, task.blob);
    return { fetched, resumed };
  }
}
