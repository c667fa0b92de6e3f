/**
 * InternLM2Tokenizer rules (tokenization_internlm2.py shipped with the
 * InternLM2 / InternVL2-2B/8B/26B checkpoints, run by transformers 4.37's slow
 * PreTrainedTokenizer). Expected strings are worked out by hand from that
 * code: encode = plain sentencepiece + BOS from the model; convert_tokens_to_string
 * puts ' ' before a special token that follows a non-special one (also at
 * position 0), decodes each run with sentencepiece (which drops the run's
 * leading dummy-prefix space), then always applies clean_up_tokenization;
 * _maybe_add_prefix_space compares a token string with a set of ids, so its
 * ' ' is always added and then cut by [1:].
 */
import { join } from 'node:path';
import { loadTokenizerSync } from '../../lib/text/tokenizer.js';
import { makeTokenizerDir, tokFixtures } from './helpers.js';

const dir = makeTokenizerDir(
  { 'tokenizer.model': join(tokFixtures, 'llama2.tokenizer.model') },
  {
    'tokenizer_config.json': {
      tokenizer_class: 'InternLM2Tokenizer',
      bos_token: '<s>',
      eos_token: '</s>',
      unk_token: '<unk>',
      pad_token: '</s>',
      additional_special_tokens: ['<|im_end|>', '<img>'],
      added_tokens_decoder: {
        '32000': { content: '<|im_end|>', lstrip: false, rstrip: false, normalized: false, single_word: false, special: true },
        '32001': { content: '<img>', lstrip: false, rstrip: false, normalized: false, single_word: false, special: true },
      },
    },
  },
);
const tok = loadTokenizerSync(dir);

test('BOS comes from the sentencepiece model, encode is plain sentencepiece', () => {
  expect(tok.bosTokenId).toBe(1);
  expect(tok.eosTokenId).toBe(2);
  expect(tok.encode('Hello world')).toEqual([1, 15043, 3186]);
  expect(tok.encode('a<|im_end|>b', { addSpecialTokens: false })).toEqual([263, 32000, 289]); // '▁b': every chunk gets the dummy prefix
});

test('decode keeps a leading space and puts one before special tokens', () => {
  expect(tok.decode([1, 15043, 3186])).toBe(' <s>Hello world');
  expect(tok.decode([1, 15043, 3186], { skipSpecialTokens: true })).toBe('Hello world');
  expect(tok.decode(tok.encode(' Hello world'), { skipSpecialTokens: true })).toBe(' Hello world');
  // <|im_end|> is an additional special token with id >= the sp vocabulary size (32000), so _decode
  // keeps it as its own sub-text, joined with ' ' (spaces_between_special_tokens defaults to True).
  expect(tok.decode([1, 263, 32000, 29890])).toBe(' <s>a <|im_end|> b');
});

test('clean_up_tokenization is always applied', () => {
  const ids = tok.encode('Hello , world ! It \'s', { addSpecialTokens: false });
  expect(tok.decode(ids)).toBe("Hello, world! It's");
});
