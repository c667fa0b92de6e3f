// libuv's threadpool for bench/loadtest.mjs, which serves in-process what `internvl serve`
// serves: the size dist/cli/bin.cjs gives the command (the user's UV_THREADPOOL_SIZE, else one
// thread per core), or --uv-threadpool N (0: unset, Node's default of 4) for an A/B.
// libuv read the variable when Node's ESM loader started the pool to read this module graph,
// before any of it ran, so setting it here would be too late: when the size wanted is not the
// one this process started with, the load test runs again in a child process started with it.
// Imported first, before the modules that load sharp and the addon.
import { spawnSync } from 'node:child_process';
import { defaultUvThreadpoolSize, uvThreadpoolSizeOf } from '../dist/cli/threadpool.cjs';
import { arg } from './args.mjs';

const atStart = process.env.UV_THREADPOOL_SIZE;
const flag = arg('--uv-threadpool', [])[0];
if (flag !== undefined && !(Number.isInteger(Number(flag)) && Number(flag) >= 0)) throw new Error(`--uv-threadpool: expected a thread count (0: Node's default), got ${flag}`);
const wanted = flag === undefined ? atStart || String(defaultUvThreadpoolSize()) : Number(flag) === 0 ? undefined : String(Number(flag));
if (uvThreadpoolSizeOf(wanted) !== uvThreadpoolSizeOf(atStart)) {
  const env = { ...process.env };
  if (wanted === undefined) delete env.UV_THREADPOOL_SIZE;
  else env.UV_THREADPOOL_SIZE = wanted;
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env });
  if (r.error) throw r.error;
  if (r.signal) process.kill(process.pid, r.signal);
  process.exit(r.status ?? 1);
}

/** The pool size this process runs with (the output's uv_threadpool_size). */
export const uvThreadpoolSize = uvThreadpoolSizeOf(atStart);
