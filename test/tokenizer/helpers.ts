/** Shared paths and readers for the tokenizer tests (self-contained: test/fixtures only). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const tokFixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tokenizers');

export interface VocabCase {
  text: string;
  ids: number[];
}

/** llama.cpp's vocab test format: strings split on "\n__ggml_vocab_test__\n", one line of ids per string. */
export function readVocabTest(name: string): VocabCase[] {
  const inp = readFileSync(join(tokFixtures, `${name}.inp`), 'utf8').split('\n__ggml_vocab_test__\n');
  if (inp[inp.length - 1] === '') inp.pop();
  const out = readFileSync(join(tokFixtures, `${name}.out`), 'utf8').split('\n');
  return inp.map((text, i) => ({
    text,
    ids: out[i].trim() === '' ? [] : out[i].trim().split(/\s+/).map(Number),
  }));
}
