/**
 * A tokenizer.json whose Split pattern backtracks catastrophically is refused at load with
 * ERR_TOKENIZER (lib/text/regexProbe.ts), instead of freezing the process on the first prompt
 * with a run of one character; the released patterns pass the probe and load as before.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadTokenizerSync } from '../../lib/text/tokenizer.js';
import { fixturesDir } from '../helpers/goldens.js';
import { makeTokenizerDir } from './helpers.js';

const src = join(fixturesDir, 'models', 'tiny-qwen2');
const base = JSON.parse(readFileSync(join(src, 'tokenizer.json'), 'utf8'));
// The tokenizer.json pipeline runs the file's own Split pattern (the Qwen2 class would use its built-in one).
const config = { ...JSON.parse(readFileSync(join(src, 'tokenizer_config.json'), 'utf8')), tokenizer_class: 'PreTrainedTokenizerFast' };

function withSplitPattern(regex: string): string {
  const tok = structuredClone(base);
  tok.pre_tokenizer.pretokenizers[0].pattern = { Regex: regex };
  return makeTokenizerDir({}, { 'tokenizer.json': tok, 'tokenizer_config.json': config });
}

test.each([
  ['nested quantifiers', '(a+)+$'],
  ['overlapping alternatives under a quantifier', '(a|a)+$'],
  ['adjacent overlapping quantifiers, repeated', '(\\p{L}+\\p{L}+)+!'],
  ['nested whitespace quantifiers', '(\\s*\\s*)*$'],
])('%s (%s): ERR_TOKENIZER at load, in bounded time', (_name, regex) => {
  const dir = withSplitPattern(regex);
  const t0 = performance.now();
  let err: unknown;
  try {
    loadTokenizerSync(dir);
  } catch (e) {
    err = e;
  }
  expect(err).toMatchObject({ code: 'ERR_TOKENIZER', message: expect.stringMatching(/catastrophic backtracking/) });
  expect((err as Error).message).toContain('tokenizer.json');
  expect(performance.now() - t0).toBeLessThan(10_000);
});

test('the released Qwen2 pattern passes the probe and tokenizes as before', () => {
  const tok = loadTokenizerSync(withSplitPattern(base.pre_tokenizer.pretokenizers[0].pattern.Regex));
  const ref = loadTokenizerSync(src); // the Qwen2 class: built-in pattern
  const text = "It's 2024: 中文 tokens, spaces   and\nnew lines!!";
  expect(Array.from(tok.encode(text))).toEqual(Array.from(ref.encode(text)));
});
