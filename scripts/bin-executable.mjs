#!/usr/bin/env node
// Marks package.json's bin files executable. npm does that when it links a package into another
// project, not in the package's own checkout, where tsc writes dist/cli/main.js as 0644: on a
// fresh clone `npx internvl` (README quick start, step 2) failed with "Permission denied".
// Runs after every tsc build of dist/ (package.json scripts).
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { bin } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
// dist/cli/main.js too: it was the bin until 2026-11-29, and npx keeps a link per project
// directory that still points at it (a checkout used before then answered "Permission denied").
for (const rel of [...(typeof bin === 'string' ? [bin] : Object.values(bin ?? {})), './dist/cli/main.js']) {
  const path = join(root, rel);
  if (!existsSync(path)) throw new Error(`bin ${rel} does not exist: build dist/ first (tsc -p tsconfig.build.json)`);
  chmodSync(path, statSync(path).mode | 0o111);
}
