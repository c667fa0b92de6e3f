/**
 * The fast sampler (native/runtime/sampler.cpp: radix-sorted top-p over the tokens that carry
 * probability) against the sampler as first written (a stable comparison sort of the whole
 * vocabulary), which test/engine/samplerExact.cpp keeps as its reference: processed scores
 * bit for bit and the same drawn tokens, on random, LLM-like (fp32 and bf16-valued) and
 * adversarial scores (ties, ±0, −inf, +inf, all equal, flat, top-p 0 / 1e-9 / 0.01 / 0.99,
 * top-k 1 and V, penalties). Also Backend::greedyTokens / downloadRowsF32 of the CPU backend
 * against penalty + std::max_element. The driver is C++ because the reference's exps and
 * float sums must be the same machine operations as the product's (JS has no expf).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cxx = process.env.CXX ?? 'c++';
const flags = ['-O2', '-std=c++17', '-I', join(root, 'native')];

function sources(dir: string): string[] {
  return readdirSync(join(root, dir))
    .filter((f) => f.endsWith('.cpp'))
    .map((f) => join(root, dir, f));
}

/** Compiles up to `jobs` files at once; resolves with the objects (throws the first compiler error). */
async function compileAll(files: string[], outDir: string, jobs: number): Promise<string[]> {
  const objs: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const f = files[next++];
      const o = join(outDir, `${objs.length}_${f.replace(/[^A-Za-z0-9]/g, '_')}.o`);
      objs.push(o);
      await new Promise<void>((resolve, reject) => {
        const p = spawn(cxx, [...flags, '-c', f, '-o', o], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cxx} ${f}: ${err}`))));
      });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  return objs;
}

describe('sampler: fast path equals the literal algorithm', () => {
  let dir = '';
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('scores and tokens bit for bit; CPU greedyTokens = penalty + max_element', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ivl-sampler-'));
    // the CPU backend and the runtime it links, as the addon builds them
    const files = [join(root, 'test', 'engine', 'samplerExact.cpp'), ...sources('native/runtime'), ...sources('native/cpu')];
    const objs = await compileAll(files, dir, Math.min(4, cpus().length));
    const exe = join(dir, 'samplerExact');
    const link = spawnSync(cxx, [...objs, '-lpthread', '-o', exe], { encoding: 'utf8' });
    expect(link.stderr).toBe('');
    expect(link.status).toBe(0);
    const run = spawnSync(exe, [], { encoding: 'utf8', timeout: 300_000 });
    expect(run.stdout).toMatch(/^ok \d+\n$/);
    expect(Number(/^ok (\d+)/.exec(run.stdout)?.[1])).toBeGreaterThan(1000);
    expect(run.status).toBe(0);
  }, 600_000);
});
