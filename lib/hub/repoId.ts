/**
 * Hub model references: `org/name` or `org/name@revision` (a branch, tag, `refs/pr/N` or
 * a commit hash), as `-m` and {@link InternVL.load} accept them.
 *
 * A string is taken as a Hub reference only when no local path of that name exists
 * (the same rule as transformers' from_pretrained): `./org/name` or an existing
 * `org/name` directory always stays local.
 */
import { existsSync } from 'node:fs';
import { InternVLError } from '../errors.js';

export interface ModelRef {
  /** `org/name`. */
  repo: string;
  /** What was asked for: 'main' unless `@revision` was given. */
  revision: string;
}

export const DEFAULT_REVISION = 'main';

/** One path part of a repo id: letters, digits, `_.-`, not starting or ending with `.`/`-`, no `--` or `..`. */
const PART = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;
/** huggingface_hub's limit on the whole id. */
const MAX_REPO_ID = 96;

function validPart(part: string): boolean {
  return PART.test(part) && !part.includes('--') && !part.includes('..');
}

/** A full commit hash (then no refs/ file is written, and offline lookups go straight to the snapshot). */
export function isCommitHash(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}

function validRevision(rev: string): boolean {
  return rev.length > 0 && rev.length <= 256 && !/[\s\\:~^?*[\]]/.test(rev) && !rev.includes('..') && !rev.startsWith('/') && !rev.endsWith('/');
}

/** Parses `org/name[@revision]`; undefined when the string is not shaped like one. */
export function parseModelRef(text: string): ModelRef | undefined {
  if (typeof text !== 'string') return undefined;
  const at = text.indexOf('@');
  const repo = at < 0 ? text : text.slice(0, at);
  const revision = at < 0 ? DEFAULT_REVISION : text.slice(at + 1);
  const parts = repo.split('/');
  if (parts.length !== 2 || repo.length > MAX_REPO_ID || !parts.every(validPart)) return undefined;
  if (!validRevision(revision)) return undefined;
  return { repo, revision };
}

/** `text` names a Hub model: shaped like `org/name[@rev]` and not an existing local path. */
export function isHubModelRef(text: string): boolean {
  return parseModelRef(text) !== undefined && !existsSync(text);
}

/** Parses a reference the caller insists is one (`internvl pull`), with a clear error otherwise. */
export function requireModelRef(text: string): ModelRef {
  const ref = parseModelRef(text);
  if (!ref) {
    throw new InternVLError(
      'ERR_INVALID_ARG',
      `Expected a Hub model id like OpenGVLab/InternVL2-8B or OpenGVLab/InternVL2-8B@<revision> but received ${JSON.stringify(text)}`,
    );
  }
  return ref;
}

/** `org/name` → `models--org--name`, the cache folder huggingface_hub uses. */
export function repoFolderName(repo: string): string {
  return `models--${repo.split('/').join('--')}`;
}
