/**
 * LlamaTokenizer (slow) behaviour on the Llama-2/Llama-1 vocabulary, checked
 * against expectations written in transformers' own sources: the
 * LlamaTokenizer docstring (`legacy` example) and tests/models/llama/
 * test_tokenization_llama.py (LlamaIntegrationTest: test_simple_encode_decode,
 * test_no_differences_*, test_fast_special_tokens, test_special_token_special_word,
 * test_some_edge_cases). The huggyllama/llama-7b and hf-internal-testing
 * llama-tokenizer checkpoints used there share llama2.tokenizer.model.
 */
import { join } from 'node:path';
import { loadTokenizerSync } from '../../lib/text/tokenizer.js';
import { makeTokenizerDir, tokFixtures } from './helpers.js';

const llama2 = join(tokFixtures, 'llama2.tokenizer.model');
const base = { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', tokenizer_class: 'LlamaTokenizer' };

function llama(config: Record<string, unknown> = {}) {
  return loadTokenizerSync(
    makeTokenizerDir({ 'tokenizer.model': llama2 }, { 'tokenizer_config.json': { ...base, ...config } }),
  );
}

describe('legacy (default) LlamaTokenizer', () => {
  const tok = llama();

  test('test_simple_encode_decode', () => {
    expect(tok.encode('This is a test')).toEqual([1, 910, 338, 263, 1243]);
    expect(tok.decode([1, 910, 338, 263, 1243], { skipSpecialTokens: true })).toBe('This is a test');
    // byte fallback
    const ids = [1, 29871, 30486, 31704, 30210, 30848, 235, 179, 158, 30392];
    expect(tok.encode('生活的真谛是')).toEqual(ids);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('生活的真谛是');
    // inner spaces
    expect(tok.encode('Hi  Hello')).toEqual([1, 6324, 29871, 15043]);
    expect(tok.decode([1, 6324, 29871, 15043], { skipSpecialTokens: true })).toBe('Hi  Hello');
    expect(tok.encode('Hi   Hello')).toEqual([1, 6324, 259, 15043]);
    expect(tok.decode([1, 6324, 259, 15043], { skipSpecialTokens: true })).toBe('Hi   Hello');
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode(' ')).toEqual([1, 259]);
    expect(tok.encode('  ')).toEqual([1, 1678]);
    expect(tok.encode(' Hello')).toEqual([1, 29871, 15043]);
  });

  test('test_no_differences_special_tokens / decode', () => {
    expect(tok.encode('<s>')).toEqual([1, 1]);
    expect(tok.decode([869])).toBe('.');
    expect(tok.decode([30112, 869])).toBe('ا .');
  });

  test('docstring: legacy=True keeps the dummy prefix after a special token', () => {
    expect(tok.encode('Hello <s>.')).toEqual([1, 15043, 29871, 1, 869]);
  });

  test('test_fast_special_tokens: add_bos_token / add_eos_token', () => {
    expect(tok.encode('A sample test', { addSpecialTokens: true })).toEqual([1, 319, 4559, 1243]);
    expect(llama({ add_eos_token: true }).encode('A sample test')).toEqual([1, 319, 4559, 1243, 2]);
    expect(llama({ add_eos_token: true, add_bos_token: false }).encode('A sample test')).toEqual([319, 4559, 1243, 2]);
  });
});

describe('LlamaTokenizer legacy=false', () => {
  const tok = llama({
    legacy: false,
    added_tokens_decoder: {
      '32000': { content: '<REPR_END>', lstrip: true, rstrip: true, normalized: true, single_word: false, special: false },
    },
  });

  test('docstring: no dummy prefix after a special token', () => {
    expect(tok.encode('Hello <s>.')).toEqual([1, 15043, 29871, 1, 29889]);
  });

  test('test_some_edge_cases', () => {
    expect(tok.tokenize('<s>>')).toEqual(['<s>', '>']);
    expect(tok.tokenize('')).toEqual([]);
    expect(tok.tokenize(' ')).toEqual(['▁▁']);
    expect(tok.tokenize('▁')).toEqual(['▁▁']);
    expect(tok.tokenize(' ▁')).toEqual(['▁▁▁']);
  });

  test('test_special_token_special_word', () => {
    const ids = tok.encode('<REPR_END>inform', { addSpecialTokens: false });
    expect(ids).toEqual([29871, 32000, 262, 689]);
    // spaces_between_special_tokens defaults to True in the slow _decode.
    expect(tok.decode(ids)).toBe('<REPR_END> inform');

    const a = tok.encode('<s> Hello<s>how', { addSpecialTokens: false });
    expect(a).toEqual([1, 15043, 1, 3525]);
    expect(tok.tokenize('<s> Hello<s>how')).toEqual(['<s>', '▁Hello', '<s>', 'how']);
    expect(tok.decode(a)).toBe('<s> Hello<s>how');

    const b = tok.encode(' <s> Hello<s> how', { addSpecialTokens: false });
    expect(b).toEqual([259, 1, 15043, 1, 920]);
    expect(tok.tokenize(' <s> Hello<s> how')).toEqual(['▁▁', '<s>', '▁Hello', '<s>', '▁how']);
    expect(tok.decode(b)).toBe(' <s> Hello<s> how');
  });
});
