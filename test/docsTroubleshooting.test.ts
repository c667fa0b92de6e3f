/** docs/TROUBLESHOOTING.md explains every error code lib/errors.ts defines (a new code without an entry fails). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from '../lib/errors.js';

test('every error code has an entry in docs/TROUBLESHOOTING.md', () => {
  const doc = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'TROUBLESHOOTING.md'), 'utf8');
  const missing = ERROR_CODES.filter((c) => !doc.includes(c));
  expect(missing).toEqual([]);
});
