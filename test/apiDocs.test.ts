/**
 * docs/API.md is what scripts/gen-api-docs.mjs makes from the published declarations
 * (dist/, built by `pretest`), and every public export (and every public class member) has a
 * doc comment — what an editor shows on hover.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// @ts-expect-error: a plain .mjs script, no types
import { generateApiDocs } from '../scripts/gen-api-docs.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

test('docs/API.md is up to date and every export is documented', () => {
  const { markdown, undocumented } = generateApiDocs() as { markdown: string; undocumented: string[] };
  expect(undocumented).toEqual([]);
  expect(markdown).toContain('### `InternVL`');
  expect(readFileSync(join(root, 'docs', 'API.md'), 'utf8')).toBe(markdown);
});
