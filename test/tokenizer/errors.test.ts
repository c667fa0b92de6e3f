/** Broken tokenizer files fail with InternVLError('ERR_TOKENIZER') naming the file; bad arguments with ERR_INVALID_ARG. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InternVLError } from '../../lib/errors.js';
import { loadTokenizer, loadTokenizerSync } from '../../lib/text/tokenizer.js';
import { makeTokenizerDir, tokFixtures } from './helpers.js';

const llama2Bytes = readFileSync(join(tokFixtures, 'llama2.tokenizer.model'));

function expectTokenizerError(fn: () => unknown, fileName: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(InternVLError);
  expect((err as InternVLError).code).toBe('ERR_TOKENIZER');
  expect((err as InternVLError).message).toContain(fileName);
}

/** A small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('ERR_TOKENIZER', () => {
  test.each([10, 1000, 250_000, llama2Bytes.length - 3])('tokenizer.model truncated to %i bytes', (n) => {
    const dir = makeTokenizerDir({}, { 'tokenizer.model': llama2Bytes.subarray(0, n) });
    expectTokenizerError(() => loadTokenizerSync(dir), 'tokenizer.model');
  });

  test('tokenizer.model of random bytes never crashes or hangs', () => {
    const r = rng(7);
    for (let k = 0; k < 200; k++) {
      const buf = new Uint8Array(1 + Math.floor(r() * 300));
      for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(r() * 256);
      const dir = makeTokenizerDir({}, { 'tokenizer.model': buf });
      expectTokenizerError(() => loadTokenizerSync(dir), 'tokenizer.model');
    }
  });

  test('async loader rejects with the same error', async () => {
    const dir = makeTokenizerDir({}, { 'tokenizer.model': llama2Bytes.subarray(0, 5000) });
    await expect(loadTokenizer(dir)).rejects.toMatchObject({ code: 'ERR_TOKENIZER' });
  });

  test('garbage tokenizer.json', () => {
    const dir = makeTokenizerDir({}, { 'tokenizer.json': '{"model": {"type": "BPE", "vocab": {"a": 0}, "merg' });
    expectTokenizerError(() => loadTokenizerSync(dir), 'tokenizer.json');
  });

  test('tokenizer.json without merges', () => {
    const dir = makeTokenizerDir({}, { 'tokenizer.json': { model: { type: 'BPE', vocab: { a: 0 } } } });
    expectTokenizerError(() => loadTokenizerSync(dir), 'tokenizer.json');
  });

  test('tokenizer.json with an unsupported model', () => {
    const dir = makeTokenizerDir({}, { 'tokenizer.json': { model: { type: 'WordPiece', vocab: { a: 0 } } } });
    expectTokenizerError(() => loadTokenizerSync(dir), 'tokenizer.json');
  });

  test('vocab.json without merges.txt', () => {
    const dir = makeTokenizerDir({}, { 'vocab.json': { a: 0 } });
    expectTokenizerError(() => loadTokenizerSync(dir), 'merges.txt');
  });

  test('malformed merges.txt line', () => {
    const dir = makeTokenizerDir({}, { 'vocab.json': { a: 0, b: 1, ab: 2 }, 'merges.txt': '#version: 0.2\na b c\n' });
    expectTokenizerError(() => loadTokenizerSync(dir), 'merges.txt');
  });

  test('invalid tokenizer_config.json', () => {
    const dir = makeTokenizerDir({ 'tokenizer.model': join(tokFixtures, 'llama2.tokenizer.model') }, { 'tokenizer_config.json': '{,}' });
    expectTokenizerError(() => loadTokenizerSync(dir), 'tokenizer_config.json');
  });

  test('no tokenizer files at all', () => {
    const dir = makeTokenizerDir({}, { 'config.json': {} });
    expectTokenizerError(() => loadTokenizerSync(dir), dir);
  });
});

describe('ERR_INVALID_ARG', () => {
  const tok = loadTokenizerSync(makeTokenizerDir({ 'tokenizer.model': join(tokFixtures, 'llama2.tokenizer.model') }));
  test.each([
    ['encode(non-string)', () => tok.encode(42 as unknown as string)],
    ['encode bad option', () => tok.encode('x', { addSpecialTokens: 'yes' as unknown as boolean })],
    ['decode(non-array)', () => tok.decode('1 2' as unknown as number[])],
    ['decode id out of range', () => tok.decode([1, 32000])],
    ['decode negative id', () => tok.decode([-1])],
    ['decode fractional id', () => tok.decode([1.5])],
    ['stream push bad id', () => tok.createDecodeStream().push(99999)],
    ['loadTokenizerSync(empty)', () => loadTokenizerSync('')],
  ])('%s', (_name, fn) => {
    expect(fn).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
  });
});
