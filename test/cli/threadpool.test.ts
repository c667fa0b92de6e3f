/**
 * The `internvl` command sizes libuv's threadpool to the machine unless UV_THREADPOOL_SIZE is
 * set (lib/cli/threadpool.cts; issue #8: a burst of requests' preprocessing queued on Node's 4
 * threads). libuv reads the variable once, when the pool first runs a task, so besides the
 * helper's arithmetic this checks the compiled bin (dist/, built by `pretest`) in a real
 * process: a stand-in for main.js counts the pool's threads, which only come out of the
 * variable if the bin set it before Node's ESM loader, reading main.js, started the pool.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as Threadpool from '../../lib/cli/threadpool.cjs';
import { fixturesDir } from '../helpers/goldens.js';

const root = join(fixturesDir, '..', '..');
const distCli = join(root, 'dist', 'cli');
const { applyUvThreadpoolSize, defaultUvThreadpoolSize, uvThreadpoolSizeOf } = createRequire(import.meta.url)(
  join(distCli, 'threadpool.cjs'),
) as typeof Threadpool;

test('one thread per core, never fewer than Node default 4 nor more than 64', () => {
  expect([1, 2, 4, 16, 64, 128].map((cores) => defaultUvThreadpoolSize(cores))).toEqual([4, 4, 4, 16, 64, 64]);
});

test('a value the user set is kept; an unset or empty one gets the default', () => {
  const kept: NodeJS.ProcessEnv = { UV_THREADPOOL_SIZE: '2' };
  expect(applyUvThreadpoolSize(kept, 16)).toBe(2);
  expect(kept.UV_THREADPOOL_SIZE).toBe('2');
  for (const env of [{}, { UV_THREADPOOL_SIZE: '' }] as NodeJS.ProcessEnv[]) {
    expect(applyUvThreadpoolSize(env, 16)).toBe(16);
    expect(env.UV_THREADPOOL_SIZE).toBe('16');
  }
});

test('the pool size of a value is what libuv makes of it', () => {
  expect([undefined, '8', ' 8', '8x', '0', 'many', '5000', '-1'].map(uvThreadpoolSizeOf)).toEqual([4, 8, 8, 8, 1, 1, 1024, 1024]);
});

// Counts the pool's threads by parking them one at a time in open() of a FIFO that has no writer
// yet, until a stat() finds no thread left; then lets them go.
const probe = `
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const dir = mkdtempSync(join(tmpdir(), 'ivl-pool-'));
const fifos = [];
const parked = [];
for (;;) {
  const fifo = join(dir, 'p' + fifos.length);
  execFileSync('mkfifo', [fifo]);
  fifos.push(fifo);
  parked.push(open(fifo, 'r'));
  const free = await Promise.race([stat(dir).then(() => true), new Promise((r) => setTimeout(() => r(false), 1000))]);
  if (!free || fifos.length > 100) break;
}
for (const f of fifos) closeSync(openSync(f, 'w'));
for (const h of await Promise.all(parked)) await h.close();
rmSync(dir, { recursive: true });
console.log(JSON.stringify({ threads: fifos.length, env: process.env.UV_THREADPOOL_SIZE ?? null }));
`;

// dist/cli/bin.cjs beside a main.js that probes the pool, run on a machine of 12 cores
function binWithProbe(env: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'ivl-bin-'));
  try {
    for (const f of ['bin.cjs', 'threadpool.cjs']) copyFileSync(join(distCli, f), join(dir, f));
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
    writeFileSync(join(dir, 'main.js'), probe);
    writeFileSync(join(dir, 'cores.cjs'), "require('node:os').availableParallelism = () => 12;\n");
    const base = { ...process.env };
    delete base.UV_THREADPOOL_SIZE;
    const r = spawnSync(process.execPath, ['-r', join(dir, 'cores.cjs'), join(dir, 'bin.cjs')], { encoding: 'utf8', env: { ...base, ...env }, timeout: 60_000 });
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout) as { threads: number; env: string | null };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const posix = process.platform === 'win32' ? test.skip : test;

posix('the bin sizes the pool before main.js loads: 12 threads on 12 cores', () => {
  expect(binWithProbe({})).toEqual({ threads: 12, env: '12' });
});

posix('the bin keeps a UV_THREADPOOL_SIZE the user set', () => {
  expect(binWithProbe({ UV_THREADPOOL_SIZE: '6' })).toEqual({ threads: 6, env: '6' });
});

test('package.json points the internvl command at that bin, and it runs the CLI', () => {
  expect(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).bin).toEqual({ internvl: './dist/cli/bin.cjs' });
  const r = spawnSync(process.execPath, [join(distCli, 'bin.cjs'), 'serve', '--help'], { encoding: 'utf8', timeout: 60_000 });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/OpenAI-compatible HTTP API/);
});
