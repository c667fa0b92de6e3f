/**
 * The cache layout huggingface_hub uses, so a model pulled here is found by transformers
 * and the other way round:
 *
 * ```
 * <cacheDir>/models--<org>--<name>/
 *   blobs/<etag>                       file contents, named by their sha256 (LFS files) or git blob sha1
 *   blobs/<etag>.incomplete            a download in progress (resumed with HTTP Range; never read as the file)
 *   snapshots/<commit>/<path>          symlink → ../../blobs/<etag> (a copy where symlinks are not allowed)
 *   refs/<revision>                    the commit a branch or tag pointed at when last resolved (no newline)
 * ```
 *
 * A blob appears under its final name only after its size and checksum verified (download.ts),
 * so anything in blobs/ without the `.incomplete` suffix is complete.
 */
import { constants } from 'node:fs';
import { access, copyFile, lstat, mkdir, readFile, readlink, rename, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { InternVLError } from '../errors.js';
import { isCommitHash, repoFolderName } from './repoId.js';

/** A repo path from the Hub that stays inside the snapshot (no absolute paths, no `..`). */
export function safeRepoPath(path: string): string {
  const parts = path.split('/');
  if (path === '' || isAbsolute(path) || path.includes('\\') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new InternVLError('ERR_HUB_NOT_FOUND', `The Hub listed a file with an unsafe path: ${JSON.stringify(path)}`);
  }
  return parts.join(sep);
}

export class RepoCache {
  /** `<cacheDir>/models--org--name`. */
  readonly root: string;

  constructor(
    readonly cacheDir: string,
    readonly repo: string,
  ) {
    this.root = join(cacheDir, repoFolderName(repo));
  }

  get blobsDir(): string {
    return join(this.root, 'blobs');
  }

  blobPath(etag: string): string {
    if (!/^[A-Za-z0-9_-]+$/.test(etag)) throw new InternVLError('ERR_HUB_NOT_FOUND', `The Hub gave an unusable file id ${JSON.stringify(etag)}`);
    return join(this.blobsDir, etag);
  }

  incompletePath(etag: string): string {
    return `${this.blobPath(etag)}.incomplete`;
  }

  snapshotDir(commit: string): string {
    return join(this.root, 'snapshots', commit);
  }

  refPath(revision: string): string {
    return join(this.root, 'refs', ...revision.split('/'));
  }

  /** The commit `revision` resolved to when last online (a hash is itself); undefined if never. */
  async readRef(revision: string): Promise<string | undefined> {
    if (isCommitHash(revision)) return revision;
    try {
      const commit = (await readFile(this.refPath(revision), 'utf8')).trim();
      return isCommitHash(commit) ? commit : undefined;
    } catch {
      return undefined;
    }
  }

  /** Records that `revision` points at `commit` (atomically: a reader never sees half a hash). */
  async writeRef(revision: string, commit: string): Promise<void> {
    if (isCommitHash(revision)) return; // a hash needs no ref
    const path = this.refPath(revision);
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, commit);
    await rename(tmp, path);
  }

  /**
   * Makes `snapshots/<commit>/<path>` name the blob: a relative symlink as huggingface_hub
   * makes, or a copy where the filesystem refuses symlinks (Windows without developer mode).
   */
  async linkSnapshotFile(commit: string, path: string, etag: string): Promise<string> {
    const dest = join(this.snapshotDir(commit), safeRepoPath(path));
    const blob = this.blobPath(etag);
    const target = relative(dirname(dest), blob);
    await mkdir(dirname(dest), { recursive: true });
    const existing = await lstat(dest).catch(() => undefined);
    if (existing?.isSymbolicLink() && (await readlink(dest)) === target) return dest;
    if (existing) await unlink(dest);
    try {
      await symlink(target, dest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'EACCES' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw e;
      await copyFile(blob, dest);
    }
    return dest;
  }
}

/** Whether `path` exists and is readable, following symlinks (a dangling link is missing). */
export async function readable(path: string): Promise<boolean> {
  try {
    await access(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}
