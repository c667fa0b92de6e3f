#!/usr/bin/env node
// Builds the native addon exactly once per install: cmake-js (the build of record)
// when CMake is on PATH, otherwise node-gyp with binding.gyp (CPU backend only).
// INTERNVL_CUDA=AUTO|ON|OFF and INTERNVL_CUDA_ARCHS pass through to CMake.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function has(cmd) {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

const debug = process.argv.includes('--debug');
// INTERNVL_BUILD_SYSTEM=gyp forces the fallback (how CI-less machines without CMake build).
const system = process.env.INTERNVL_BUILD_SYSTEM ?? (has('cmake') ? 'cmake' : 'gyp');
if (system === 'cmake') {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const defs = [`--CDINTERNVL_CUDA=${process.env.INTERNVL_CUDA ?? 'AUTO'}`];
  if (process.env.INTERNVL_CUDA_ARCHS) defs.push(`--CDINTERNVL_CUDA_ARCHS=${process.env.INTERNVL_CUDA_ARCHS}`);
  if (process.env.INTERNVL_SANITIZE) defs.push('--CDINTERNVL_SANITIZE=ON');
  const args = [cmakeJs, 'compile', '--out', 'build', ...defs];
  if (debug) args.push('--debug');
  if (process.env.CMAKE_GENERATOR === 'Ninja' || has('ninja')) args.push('--generator', 'Ninja');
  process.exit(run(process.execPath, args));
} else {
  if (!process.env.INTERNVL_BUILD_SYSTEM) console.warn('internvl: cmake not found; building the CPU-only addon with node-gyp (binding.gyp)');
  const gyp = (() => {
    try {
      return require.resolve('node-gyp/bin/node-gyp.js');
    } catch {
      return join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
    }
  })();
  // node-gyp downloads Node's headers unless told where they are: use the running
  // Node's own (installed beside it as <prefix>/include/node), or npm's nodedir.
  const prefix = join(dirname(process.execPath), '..');
  const nodedir = process.env.npm_config_nodedir ?? (existsSync(join(prefix, 'include/node/common.gypi')) ? prefix : undefined);
  if (!nodedir) {
    console.error('internvl: neither CMake nor local Node headers were found; install CMake (e.g. apt-get install cmake) and retry');
    process.exit(1);
  }
  process.exit(run(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, ...(debug ? ['--debug'] : [])]));
}
