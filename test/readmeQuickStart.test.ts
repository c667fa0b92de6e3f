/**
 * The README's quick start, step 2, run as written (the `npx internvl run ...` line of its code
 * block, from the repository root), as a user on a fresh clone runs it. It once failed there with
 * "Permission denied": tsc writes the bin without the executable bit and npm only sets it when
 * it links a package into another project (scripts/bin-executable.mjs now does after each build).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir } from './helpers/goldens.js';

const root = join(fixturesDir, '..', '..');

// Words of a shell command line: whitespace-separated, "double" and 'single' quotes grouping.
function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) words.push(m[1] ?? m[2] ?? m[3]);
  return words;
}

test('quick start step 2 (npx internvl run on the bundled checkpoint) runs and answers', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const block = /## Quick start[^\n]*\n+```sh\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(block).toBeDefined();
  const line = (block as string).split('\n').find((l) => l.startsWith('npx internvl run '));
  expect(line).toBeDefined();
  const [cmd, ...args] = shellWords((line as string).replace(/\s+#.*$/, ''));
  expect(cmd).toBe('npx');
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', timeout: 120_000 });
  expect(r.stderr).not.toMatch(/Permission denied/);
  expect(r.status).toBe(0);
  expect(r.stdout.trim().length).toBeGreaterThan(0);
});
