/**
 * Property-based fuzzing of the tokenizer readers (lib/text): mutated tokenizer.model
 * bytes (the protobuf reader and SentencePiece model), mutated tokenizer.json,
 * vocab.json / merges.txt and the HF side files (tokenizer_config.json,
 * special_tokens_map.json, added_tokens.json). Every load either succeeds or fails
 * with InternVLError ERR_TOKENIZER; a tokenizer that loads encodes, decodes and
 * stream-decodes random text without throwing anything but ERR_INVALID_ARG, and
 * never hangs (jest's timeout). Seeds are fixed; FUZZ_SEED / FUZZ_SCALE change them.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProtobufError } from '../../lib/text/protobuf.js';
import { parseSentencePieceModel } from '../../lib/text/sentencepieceModel.js';
import { type Tokenizer, loadTokenizerSync } from '../../lib/text/tokenizer.js';
import { fixturesDir } from '../helpers/goldens.js';
import { type Json, type Rng, expectTyped, fuzzLoop, fuzzSeed, iterations, jsonKeys, mutateBytes, mutateJson, randomText } from './mutate.js';

const models = join(fixturesDir, 'models');
const SP_MODELS = ['tiny-internlm2', 'tiny-phi3', 'tiny-yi'].map((m) => readFileSync(join(models, m, 'tokenizer.model')));
const SIDE = ['tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json'];

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'fuzz-tok-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A fresh directory with copies of a fixture model's tokenizer files. */
function dirFrom(model: string, files: string[]): string {
  const dir = mkdtempSync(join(root, `${model}-`));
  for (const f of files) copyFileSync(join(models, model, f), join(dir, f));
  return dir;
}

const readJson = (model: string, file: string) => JSON.parse(readFileSync(join(models, model, file), 'utf8')) as Json;

/**
 * What a loaded tokenizer must survive: random text in, ids out and back, streamed too.
 * Only ERR_INVALID_ARG (ids outside the vocabulary) and, for a mutated vocabulary that
 * cannot spell some text, ERR_TOKENIZER may come out.
 */
function exercise(tok: Tokenizer, rng: Rng): void {
  for (let k = 0; k < 3; k++) {
    const text = randomText(rng, 10);
    try {
      const ids = tok.encode(text, { addSpecialTokens: rng.chance(0.5) });
      tok.tokenize(text);
      for (const id of ids) if (!Number.isInteger(id) || id < 0) throw new Error(`encode gave id ${id}`);
      const known = ids.filter((id) => tok.idToToken(id) !== undefined);
      const skip = rng.chance(0.5);
      const whole = tok.decode(known, { skipSpecialTokens: skip });
      const stream = tok.createDecodeStream({ skipSpecialTokens: skip });
      const streamed = known.map((id) => stream.push(id)).join('') + stream.flush();
      if (typeof whole !== 'string' || typeof streamed !== 'string') throw new Error('decode gave a non-string');
      // ids the vocabulary may or may not hold: in range decodes, out of range is ERR_INVALID_ARG
      const randomIds = Array.from({ length: 4 }, () => rng.below(tok.vocabSize + 4) - 2);
      tok.decode(randomIds);
    } catch (e) {
      expectTyped(e, ['ERR_INVALID_ARG', 'ERR_TOKENIZER']);
    }
  }
}

function loadOrTyped(dir: string, rng: Rng): 'loaded' | 'refused' {
  let tok: Tokenizer;
  try {
    tok = loadTokenizerSync(dir);
  } catch (e) {
    expectTyped(e, ['ERR_TOKENIZER']);
    return 'refused';
  }
  exercise(tok, rng);
  return 'loaded';
}

test('tokenizer.model bytes: the protobuf reader returns a model or throws ProtobufError', async () => {
  let parsed = 0;
  const n = iterations(3000);
  await fuzzLoop('sentencepiece-proto', fuzzSeed(11), n, (rng, _i, record) => {
    const input = mutateBytes(rng, rng.pick(SP_MODELS), SP_MODELS);
    record(input);
    try {
      const m = parseSentencePieceModel(input);
      if (!Array.isArray(m.pieces) || m.pieces.length === 0) throw new Error('a parsed model without pieces');
      parsed++;
    } catch (e) {
      if (!(e instanceof ProtobufError)) throw e;
    }
  });
  // the mutations must reach past the first field often enough to mean something
  expect(parsed).toBeGreaterThan(n / 50);
  expect(parsed).toBeLessThan(n);
});

test('tokenizer.model through loadTokenizer: ERR_TOKENIZER or a tokenizer that works', async () => {
  const outcomes = { loaded: 0, refused: 0 };
  const families = [
    { model: 'tiny-internlm2', bytes: SP_MODELS[0] },
    { model: 'tiny-phi3', bytes: SP_MODELS[1] },
    { model: 'tiny-yi', bytes: SP_MODELS[2] },
  ];
  const dirs = families.map((f) => dirFrom(f.model, SIDE));
  await fuzzLoop('tokenizer.model', fuzzSeed(12), iterations(400), (rng, _i, record) => {
    const k = rng.below(families.length);
    const input = mutateBytes(rng, families[k].bytes, SP_MODELS);
    record(input);
    writeFileSync(join(dirs[k], 'tokenizer.model'), input);
    outcomes[loadOrTyped(dirs[k], rng)]++;
  });
  expect(outcomes.loaded).toBeGreaterThan(10);
  expect(outcomes.refused).toBeGreaterThan(10);
});

test('side files (tokenizer_config, special_tokens_map, added_tokens): ERR_TOKENIZER or a tokenizer that works', async () => {
  const outcomes = { loaded: 0, refused: 0 };
  const sources = ['tiny-internlm2', 'tiny-phi3', 'tiny-yi', 'tiny-qwen2'].map((model) => ({
    model,
    dir: dirFrom(model, model === 'tiny-qwen2' ? [...SIDE, 'vocab.json', 'merges.txt'] : [...SIDE, 'tokenizer.model']),
    side: Object.fromEntries(SIDE.map((f) => [f, readJson(model, f)])) as Record<string, Json>,
  }));
  await fuzzLoop('tokenizer-side-files', fuzzSeed(13), iterations(300), (rng, _i, record) => {
    const s = rng.pick(sources);
    const file = rng.pick(SIDE);
    const text = rng.chance(0.8)
      ? JSON.stringify(mutateJson(rng, s.side[file]))
      : Buffer.from(mutateBytes(rng, Buffer.from(JSON.stringify(s.side[file])))).toString('latin1');
    record({ model: s.model, file, text });
    writeFileSync(join(s.dir, file), text);
    outcomes[loadOrTyped(s.dir, rng)]++;
    writeFileSync(join(s.dir, file), JSON.stringify(s.side[file])); // back to the original for the next round
  });
  expect(outcomes.loaded).toBeGreaterThan(30);
  expect(outcomes.refused).toBeGreaterThan(10);
});

test('vocab.json + merges.txt (slow Qwen2): ERR_TOKENIZER or a tokenizer that works', async () => {
  const outcomes = { loaded: 0, refused: 0 };
  const dir = dirFrom('tiny-qwen2', [...SIDE, 'vocab.json', 'merges.txt']);
  const vocab = readJson('tiny-qwen2', 'vocab.json');
  const merges = readFileSync(join(models, 'tiny-qwen2', 'merges.txt'));
  await fuzzLoop('vocab-merges', fuzzSeed(14), iterations(200), (rng, _i, record) => {
    const v = rng.chance(0.5) ? JSON.stringify(mutateJson(rng, vocab)) : JSON.stringify(vocab);
    const m = rng.chance(0.6) ? mutateBytes(rng, merges) : merges;
    record({ vocab: v, merges: Buffer.from(m).toString('latin1') });
    writeFileSync(join(dir, 'vocab.json'), v);
    writeFileSync(join(dir, 'merges.txt'), m);
    outcomes[loadOrTyped(dir, rng)]++;
  });
  expect(outcomes.loaded).toBeGreaterThan(10);
  expect(outcomes.refused).toBeGreaterThan(10);
});

test('tokenizer.json (the fast pipeline): ERR_TOKENIZER or a tokenizer that works', async () => {
  const outcomes = { loaded: 0, refused: 0 };
  const dir = mkdtempSync(join(root, 'fast-'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast' }));
  const json = readJson('tiny-qwen2', 'tokenizer.json');
  const keys = jsonKeys(json).filter((k) => !/^[\u0100-\u017f\w]{1,3}$/.test(k) || k.length > 3); // not the vocabulary
  // one valid load first: the base case works
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  expect(loadTokenizerSync(dir).encode('hello world')).not.toHaveLength(0);
  await fuzzLoop('tokenizer.json', fuzzSeed(15), iterations(250), (rng, _i, record) => {
    const text = rng.chance(0.85) ? JSON.stringify(mutateJson(rng, json, keys)) : Buffer.from(mutateBytes(rng, Buffer.from(JSON.stringify(json)))).toString('latin1');
    record(text);
    writeFileSync(join(dir, 'tokenizer.json'), text);
    outcomes[loadOrTyped(dir, rng)]++;
  });
  expect(outcomes.loaded).toBeGreaterThan(10);
  expect(outcomes.refused).toBeGreaterThan(10);
});

test('unmutated tokenizers: streamed decoding of random text equals decode()', async () => {
  const toks = ['tiny-internlm2', 'tiny-phi3', 'tiny-yi', 'tiny-qwen2'].map((m) => loadTokenizerSync(join(models, m)));
  await fuzzLoop('decode-stream', fuzzSeed(16), iterations(400), (rng, _i, record) => {
    const tok = rng.pick(toks);
    const text = randomText(rng, 12);
    const skip = rng.chance(0.5);
    record({ text, skip });
    const ids = tok.encode(text, { addSpecialTokens: rng.chance(0.5) });
    const stream = tok.createDecodeStream({ skipSpecialTokens: skip });
    const streamed = ids.map((id) => stream.push(id)).join('') + stream.flush();
    expect(streamed).toBe(tok.decode(ids, { skipSpecialTokens: skip }));
  });
});
