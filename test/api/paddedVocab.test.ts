/**
 * A checkpoint whose embedding has more rows than its tokenizer has tokens (released models
 * pad the vocabulary, e.g. Qwen2 151655 rows for 151646 tokens) can emit an id with no text.
 * chat() must not fail on it: the id is reported in tokenIds, contributes no text (as HF fast
 * tokenizers skip it), and streaming keeps going. Random weights over 5000 rows with an
 * 812-token tokenizer emit such ids at almost every step.
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InternVL } from '../../lib/model.js';
import { fixturesDir } from '../helpers/goldens.js';

test('ids beyond the tokenizer: no error, no text, still in tokenIds', async () => {
  const src = join(fixturesDir, 'models', 'tiny-qwen2');
  const dir = mkdtempSync(join(tmpdir(), 'ivl-padded-'));
  const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
  cfg.llm_config.vocab_size = 5000;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(src, f), join(dir, f));
  await using model = await InternVL.load(dir, { backend: 'cpu', dummyWeights: true });
  const pieces: string[] = [];
  const r = await model.chat({ question: 'hi', generation: { maxNewTokens: 24, doSample: true, temperature: 1.5, seed: 7 } });
  let streamed = '';
  for await (const piece of model.stream({ question: 'hi', generation: { maxNewTokens: 24, doSample: true, temperature: 1.5, seed: 7 } })) streamed += typeof piece === 'string' ? piece : '';
  pieces.push(streamed);
  const beyond = r.tokenIds.filter((id) => id >= 812);
  expect(beyond.length).toBeGreaterThan(0);
  expect(r.tokenIds.length).toBeGreaterThan(0);
  expect(typeof r.response).toBe('string');
  expect(r.response).not.toMatch(/undefined/);
  // the text is what the in-vocabulary ids decode to; streaming gives the same text
  expect(pieces[0].trim()).toBe(r.response);
});
