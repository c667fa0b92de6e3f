/**
 * The size of libuv's threadpool for the `internvl` command (dist/cli/bin.cjs) and the load test
 * that stands in for `internvl serve` (bench/loadtest.mjs). CommonJS so that the bin can run it
 * before Node's ESM loader starts: on Node 20 that loader reads modules with async fs, which
 * starts the pool, and libuv reads UV_THREADPOOL_SIZE only then.
 */
import { availableParallelism } from 'node:os';

/** libuv's size when UV_THREADPOOL_SIZE is unset. */
export const NODE_DEFAULT_UV_THREADPOOL_SIZE = 4;

/**
 * One thread per core: each request's preprocessing (sharp's decode, the addon's tiling) runs
 * as pool tasks, so a burst of arrivals preprocesses in parallel instead of queueing 4 at a
 * time. That matters for many-tile photos (100-150 ms of pool work each); with one-tile pictures
 * the H200 load test measured no difference (docs/SERVER.md). Never below Node's 4 (pool threads
 * also block on fs and DNS); at most 64, past which more threads only add idle stacks on very
 * wide hosts.
 */
export function defaultUvThreadpoolSize(cores: number = availableParallelism()): number {
  return Math.min(64, Math.max(NODE_DEFAULT_UV_THREADPOOL_SIZE, cores));
}

/** The pool size libuv makes of a UV_THREADPOOL_SIZE value (atoi; 0 means 1; capped at 1024). */
export function uvThreadpoolSizeOf(value: string | undefined): number {
  if (value === undefined) return NODE_DEFAULT_UV_THREADPOOL_SIZE;
  const n = Number.parseInt(value, 10);
  if (Number.isNaN(n) || n === 0) return 1;
  // libuv keeps the value unsigned: a negative one wraps past the cap
  return n < 0 || n > 1024 ? 1024 : n;
}

/**
 * Sets UV_THREADPOOL_SIZE to defaultUvThreadpoolSize() unless the user has set it (an empty
 * value counts as unset: libuv would make it one thread); returns the pool size it gives.
 * Effective only before anything in the process has used the pool.
 */
export function applyUvThreadpoolSize(env: NodeJS.ProcessEnv = process.env, cores?: number): number {
  if (!env.UV_THREADPOOL_SIZE) env.UV_THREADPOOL_SIZE = String(defaultUvThreadpoolSize(cores));
  return uvThreadpoolSizeOf(env.UV_THREADPOOL_SIZE);
}
