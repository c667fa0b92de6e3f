/**
 * The SentencePiece BPE core against the real sentencepiece library: ids,
 * pieces and decoded text made by test/fixtures/tokenizers/make_spm_goldens.py
 * (python3-sentencepiece 0.1.97), plus llama.cpp's HF-made ids for Llama-2.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SentencePieceProcessor } from '../../lib/text/sentencepiece.js';
import { parseSentencePieceModel } from '../../lib/text/sentencepieceModel.js';
import { readVocabTest, tokFixtures } from './helpers.js';

interface SpmCase {
  text: string;
  ids: number[];
  pieces: string[];
  decoded: string;
}
interface SpmGoldens {
  sentencepiece_version: string;
  models: Record<string, { file: string; cases: SpmCase[] }>;
}

const goldens = JSON.parse(readFileSync(join(tokFixtures, 'spm-goldens.json'), 'utf8')) as SpmGoldens;

function load(file: string): SentencePieceProcessor {
  return new SentencePieceProcessor(parseSentencePieceModel(readFileSync(join(tokFixtures, file))));
}

describe.each(Object.entries(goldens.models))('sentencepiece %s', (_name, model) => {
  const sp = load(model.file);
  test.each(model.cases.map((c, i) => [i, JSON.stringify(c.text).slice(0, 40), c] as const))(
    'case %i %s',
    (_i, _label, c) => {
      const got = sp.encode(c.text);
      expect(got.map((p) => p.id)).toEqual(c.ids);
      expect(got.map((p) => p.piece)).toEqual(c.pieces);
      expect(sp.decodeIds(c.ids)).toBe(c.decoded);
    },
  );
});

describe('sentencepiece model facts', () => {
  test('chinese-llama has thousands of equal scores, so the tie rule matters', () => {
    const proto = parseSentencePieceModel(readFileSync(join(tokFixtures, 'chinese-llama.tokenizer.model')));
    const zeros = proto.pieces.filter((p) => p.score === 0 && p.type === 1).length;
    expect(zeros).toBeGreaterThan(10000);
  });

  test('llama2 proto2 defaults and fields', () => {
    const proto = parseSentencePieceModel(readFileSync(join(tokFixtures, 'llama2.tokenizer.model')));
    expect(proto.pieces).toHaveLength(32000);
    expect(proto.trainerSpec.byteFallback).toBe(true);
    expect(proto.normalizerSpec.addDummyPrefix).toBe(true);
    expect(proto.normalizerSpec.removeExtraWhitespaces).toBe(false);
    expect(proto.normalizerSpec.name).toBe('identity');
  });
});

describe('llama-spm vocab test (HF Llama tokenizer ids, no special tokens)', () => {
  const sp = load('llama2.tokenizer.model');
  test.each(readVocabTest('llama-spm').map((c, i) => [i, JSON.stringify(c.text).slice(0, 40), c] as const))(
    'case %i %s',
    (_i, _label, c) => {
      expect(sp.encodeIds(c.text)).toEqual(c.ids);
    },
  );
});

test('encoding 100 KB takes well under a second (no quadratic merges)', () => {
  const sp = load('chinese-llama.tokenizer.model');
  const text = goldens.models['chinese-llama'].cases.map((c) => c.text).join('\n');
  const big = text.repeat(Math.ceil(100_000 / text.length)).slice(0, 100_000);
  const longWord = 'ab'.repeat(50_000);
  sp.encodeIds('warm up');
  const t0 = performance.now();
  sp.encodeIds(big);
  sp.encodeIds(longWord);
  expect(performance.now() - t0).toBeLessThan(1500);
});
