/**
 * The native checkpoint loader on broken copies of the fixture checkpoints
 * (test/fixtures/models): every failure is ERR_CHECKPOINT (or ERR_CONFIG) with a
 * message naming the file and the tensor. Also: sharded == single file,
 * F32/F16/unaligned storage == the BF16 values.
 */
import { cpSync, existsSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import type { NativeGenerateRequest } from '../../lib/nativeTypes.js';
import { assemble, encodeSafetensors, readSafetensorsFile, splitSafetensors, type StTensor } from '../helpers/safetensors.js';
import { tempDir } from './tinyModel.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models');
const base = join(fixtures, 'tiny-internlm2'); // single file, InternViT-300M style, H = 64, vocab 809
const sharded = join(fixtures, 'tiny-yi'); // index + two shards
const IMG_CONTEXT = 802; // <IMG_CONTEXT> in both tokenizers
const VOCAB = 809;

let root: string;
beforeAll(() => {
  root = tempDir('ivl-loader-');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function copyOf(src: string): string {
  const dir = join(root, `case-${n++}`);
  cpSync(src, dir, { recursive: true });
  return dir;
}

function load(dir: string) {
  return EngineModel.load(dir, { imageContextTokenId: IMG_CONTEXT, threads: 1 });
}

/** The tensor whose bytes end last in a file (the one truncation hits first). */
function lastTensor(path: string): string {
  const { header } = splitSafetensors(readFileSync(path));
  return Object.entries(header).sort((a, b) => b[1].data_offsets[1] - a[1].data_offsets[1])[0][0];
}

/** Rewrites a file's header JSON (keeping its data section). */
function editHeader(dir: string, file: string, edit: (h: Record<string, any>) => void): void {
  const path = join(dir, file);
  const { data, headerJson } = splitSafetensors(readFileSync(path));
  const h = JSON.parse(headerJson);
  edit(h);
  writeFileSync(path, assemble(JSON.stringify(h), data));
}

async function expectLoadError(dir: string, code: string, message: string | RegExp) {
  let err: any;
  try {
    const m = await load(dir);
    m.dispose();
  } catch (e) {
    err = e;
  }
  expect(err).toBeDefined();
  expect(err.code).toBe(code);
  if (typeof message === 'string') expect(err.message).toBe(message);
  else expect(err.message).toMatch(message);
}

const EMB = 'language_model.model.tok_embeddings.weight';
const NORM = 'language_model.model.norm.weight';
const FC1 = 'vision_model.encoder.layers.0.mlp.fc1.weight'; // [96, 48]

describe('corrupt safetensors files', () => {
  test('shorter than the length field', async () => {
    const dir = copyOf(base);
    writeFileSync(join(dir, 'model.safetensors'), Buffer.from([1, 2, 3, 4]));
    await expectLoadError(dir, 'ERR_CHECKPOINT', 'model.safetensors: file is 4 bytes, too short for the 8-byte header length');
  });

  test('header length beyond the file (truncated header)', async () => {
    const dir = copyOf(base);
    const buf = readFileSync(join(dir, 'model.safetensors'));
    const cut = buf.subarray(0, 100);
    writeFileSync(join(dir, 'model.safetensors'), cut);
    const len = Number(buf.readBigUInt64LE(0));
    await expectLoadError(
      dir,
      'ERR_CHECKPOINT',
      `model.safetensors: header length ${len} exceeds the file size (100 bytes): truncated or not a safetensors file`,
    );
  });

  test('truncated data: offsets out of range name the tensor', async () => {
    const dir = copyOf(base);
    const buf = readFileSync(join(dir, 'model.safetensors'));
    writeFileSync(join(dir, 'model.safetensors'), buf.subarray(0, buf.length - 10));
    const last = lastTensor(join(base, 'model.safetensors'));
    let err: any;
    await load(dir).catch((e) => (err = e));
    expect(err.code).toBe('ERR_CHECKPOINT');
    expect(err.message).toMatch(/^model\.safetensors: tensor '([^']+)': data_offsets \[\d+, \d+\] are out of range: the data section is \d+ bytes$/);
    expect(err.message).toContain(`tensor '${last}'`);
  });

  test('header is not JSON', async () => {
    const dir = copyOf(base);
    const path = join(dir, 'model.safetensors');
    const buf = readFileSync(path);
    buf[8] = 'x'.charCodeAt(0);
    writeFileSync(path, buf);
    await expectLoadError(dir, 'ERR_CHECKPOINT', "model.safetensors: header is not valid JSON: unexpected character 'x' at byte 0");
  });

  test('header is JSON but not an object', async () => {
    const dir = copyOf(base);
    writeFileSync(join(dir, 'model.safetensors'), assemble('[1, 2]', Buffer.alloc(0)));
    await expectLoadError(dir, 'ERR_CHECKPOINT', 'model.safetensors: header is a JSON array, expected an object');
  });

  test('offsets past the data section', async () => {
    const dir = copyOf(base);
    editHeader(dir, 'model.safetensors', (h) => {
      h[NORM].data_offsets = [1e9, 1e9 + 64];
    });
    await expectLoadError(dir, 'ERR_CHECKPOINT', /^model\.safetensors: tensor 'language_model\.model\.norm\.weight': data_offsets \[1000000000, 1000000064\] are out of range: the data section is \d+ bytes$/);
  });

  test('reversed offsets', async () => {
    const dir = copyOf(base);
    editHeader(dir, 'model.safetensors', (h) => {
      h[NORM].data_offsets = [h[NORM].data_offsets[1], h[NORM].data_offsets[0]];
    });
    await expectLoadError(dir, 'ERR_CHECKPOINT', /^model\.safetensors: tensor 'language_model\.model\.norm\.weight': data_offsets \[\d+, \d+\] are reversed$/);
  });

  test('overlapping tensors', async () => {
    const dir = copyOf(base);
    let expected = '';
    editHeader(dir, 'model.safetensors', (h) => {
      const a = h[EMB].data_offsets as [number, number];
      h[NORM].data_offsets = [a[0] + 2, a[0] + 2 + 128]; // inside the embedding table
      expected = `model.safetensors: tensors '${EMB}' [${a[0]}, ${a[1]}) and '${NORM}' [${a[0] + 2}, ${a[0] + 130}) overlap`;
    });
    await expectLoadError(dir, 'ERR_CHECKPOINT', expected);
  });

  test('offsets that do not match dtype × shape', async () => {
    const dir = copyOf(base);
    editHeader(dir, 'model.safetensors', (h) => {
      h[NORM].shape = [65];
    });
    await expectLoadError(
      dir,
      'ERR_CHECKPOINT',
      `model.safetensors: tensor '${NORM}': data_offsets span 128 bytes but BF16 [65] needs 130`,
    );
  });

  test('unknown dtype', async () => {
    const dir = copyOf(base);
    editHeader(dir, 'model.safetensors', (h) => {
      h[NORM].dtype = 'Q4_K';
    });
    await expectLoadError(dir, 'ERR_CHECKPOINT', `model.safetensors: tensor '${NORM}': unknown dtype "Q4_K"`);
  });

  test('non-float dtype for a weight', async () => {
    const dir = copyOf(base);
    editHeader(dir, 'model.safetensors', (h) => {
      h[NORM].dtype = 'I16'; // same byte size, valid file, wrong for a weight
    });
    await expectLoadError(dir, 'ERR_CHECKPOINT', `tensor '${NORM}' in model.safetensors has dtype I16, expected a float dtype (F32, BF16 or F16)`);
  });

  test('bad shape entries', async () => {
    const dir = copyOf(base);
    editHeader(dir, 'model.safetensors', (h) => {
      h[NORM].shape = [-32];
    });
    await expectLoadError(dir, 'ERR_CHECKPOINT', `model.safetensors: tensor '${NORM}': shape entries must be non-negative integers`);
  });
});

describe('checkpoint vs config', () => {
  test('a missing tensor is named with its expected shape', async () => {
    const dir = copyOf(base);
    editHeader(dir, 'model.safetensors', (h) => {
      delete h[NORM];
    });
    await expectLoadError(dir, 'ERR_CHECKPOINT', `missing tensor '${NORM}' (expected shape [64]) in ${dir}`);
  });

  test('a wrong shape reports expected vs actual', async () => {
    const dir = copyOf(base);
    editHeader(dir, 'model.safetensors', (h) => {
      h[FC1].shape = [48, 96];
    });
    await expectLoadError(dir, 'ERR_CHECKPOINT', `tensor '${FC1}' in model.safetensors has shape [48, 96] but the config expects [96, 48]`);
  });

  test('the first mismatch in model order is reported', async () => {
    const dir = copyOf(base);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    cfg.vision_config.intermediate_size = 128; // every ViT layer's fc1/fc2 now mismatch
    cfg.llm_config.intermediate_size = 96; // and every decoder MLP
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    await expectLoadError(dir, 'ERR_CHECKPOINT', `tensor '${FC1}' in model.safetensors has shape [96, 48] but the config expects [128, 48]`);
  });

  test('no weights at all', async () => {
    const dir = copyOf(base);
    unlinkSync(join(dir, 'model.safetensors'));
    await expectLoadError(dir, 'ERR_CHECKPOINT', `no weights in ${dir}: expected model.safetensors or model.safetensors.index.json`);
  });

  test('bad config fields fail before the weights are read', async () => {
    const dir = copyOf(base);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    cfg.llm_config.num_attention_heads = 0;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    await expectLoadError(dir, 'ERR_CONFIG', 'config.json: llm_config.num_attention_heads must be a positive integer (got 0)');
    unlinkSync(join(dir, 'config.json'));
    await expectLoadError(dir, 'ERR_CONFIG', `${join(dir, 'config.json')} does not exist`);
  });

  test('tied head: lm_head may be absent only when tie_word_embeddings is set', async () => {
    const tied = copyOf(join(fixtures, 'tiny-qwen2')); // tie_word_embeddings true, no lm_head tensor
    const m = await EngineModel.load(tied, { imageContextTokenId: 805, threads: 1 });
    expect(m.info().vocabSize).toBe(812);
    m.dispose();
    const cfg = JSON.parse(readFileSync(join(tied, 'config.json'), 'utf8'));
    cfg.llm_config.tie_word_embeddings = false;
    writeFileSync(join(tied, 'config.json'), JSON.stringify(cfg));
    await expectLoadError(tied, 'ERR_CHECKPOINT', `missing tensor 'language_model.lm_head.weight' (expected shape [812, 64]) in ${tied}`);
  });
});

describe('sharded checkpoints', () => {
  test('an index naming a missing shard', async () => {
    const dir = copyOf(sharded);
    unlinkSync(join(dir, 'model-00002-of-00002.safetensors'));
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    const first = Object.entries(index.weight_map).find(([, f]) => f === 'model-00002-of-00002.safetensors')![0];
    await expectLoadError(
      dir,
      'ERR_CHECKPOINT',
      `model.safetensors.index.json maps tensor '${first}' to model-00002-of-00002.safetensors, which does not exist in ${dir}`,
    );
  });

  test('an index naming a tensor its shard lacks', async () => {
    const dir = copyOf(sharded);
    const path = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(path, 'utf8'));
    index.weight_map['language_model.extra.weight'] = 'model-00001-of-00002.safetensors';
    expect(existsSync(join(dir, 'model-00001-of-00002.safetensors'))).toBe(true);
    writeFileSync(path, JSON.stringify(index));
    await expectLoadError(
      dir,
      'ERR_CHECKPOINT',
      "model.safetensors.index.json maps tensor 'language_model.extra.weight' to model-00001-of-00002.safetensors, but that file has no such tensor",
    );
  });

  test('an index that is not JSON / has no weight_map / escapes the directory', async () => {
    const dir = copyOf(sharded);
    const path = join(dir, 'model.safetensors.index.json');
    writeFileSync(path, '{"weight_map": {');
    await expectLoadError(dir, 'ERR_CHECKPOINT', /^model\.safetensors\.index\.json is not valid JSON: .* at byte 16$/);
    writeFileSync(path, '{"metadata": {}}');
    await expectLoadError(dir, 'ERR_CHECKPOINT', 'model.safetensors.index.json: missing "weight_map" object');
    writeFileSync(path, JSON.stringify({ weight_map: { [NORM]: '../base/model.safetensors' } }));
    await expectLoadError(dir, 'ERR_CHECKPOINT', `model.safetensors.index.json: weight_map entry for '${NORM}' must be a file name in the checkpoint directory`);
  });
});

describe('storage forms give the same model', () => {
  const pixels = readSafetensorsFile(join(fixtures, '..', 'goldens', 'pixels.safetensors')).tall;
  const tile = pixels.data.subarray(0, 3 * 112 * 112);
  const req: NativeGenerateRequest = {
    sequences: [{ inputIds: Int32Array.from([1, 5, 9, ...Array(16).fill(IMG_CONTEXT), 7, 8]), pixelValues: tile, tiles: 1 }],
    maxNewTokens: 4,
    eosTokenIds: [],
    sampling: { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
    returnPromptLogits: true,
  };
  async function run(dir: string) {
    const m = await load(dir);
    try {
      return (await m.generate(req).promise)[0];
    } finally {
      m.dispose();
    }
  }

  /** Rewrites base's weights with another dtype (values widened from BF16, so exact in F32). */
  function restored(dtype: 'F32' | 'F16', leadingOddTensor: boolean): string {
    const dir = copyOf(base);
    const src = readSafetensorsFile(join(dir, 'model.safetensors'));
    const out: Record<string, StTensor> = {};
    // An extra 3-element BF16 tensor first puts every later F32 tensor at an offset ≡ 2 (mod 4).
    if (leadingOddTensor) out['extra.unused'] = { dtype: 'BF16', shape: [3], data: new Float32Array([1, 2, 3]) };
    for (const [k, t] of Object.entries(src)) out[k] = { ...t, dtype };
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(out));
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(true);
    return dir;
  }

  /** base split into two shards with an index (same BF16 values). */
  function shardedCopy(): string {
    const dir = copyOf(base);
    const src = readSafetensorsFile(join(dir, 'model.safetensors'));
    unlinkSync(join(dir, 'model.safetensors'));
    const names = Object.keys(src);
    const weightMap: Record<string, string> = {};
    [names.slice(0, 40), names.slice(40)].forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeFileSync(join(dir, file), encodeSafetensors(Object.fromEntries(part.map((k) => [k, src[k]]))));
      for (const k of part) weightMap[k] = file;
    });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    return dir;
  }

  test('sharded, F32, unaligned F32 and F16 copies match the BF16 original', async () => {
    const ref = await run(base);
    expect(ref.promptLogits!.length).toBe(VOCAB);
    const shardedRun = await run(shardedCopy());
    expect(Array.from(shardedRun.promptLogits!)).toEqual(Array.from(ref.promptLogits!));
    const f32 = await run(restored('F32', false));
    expect(Array.from(f32.promptLogits!)).toEqual(Array.from(ref.promptLogits!));
    expect(Array.from(f32.tokenIds)).toEqual(Array.from(ref.tokenIds));
    const unaligned = await run(restored('F32', true));
    expect(Array.from(unaligned.promptLogits!)).toEqual(Array.from(ref.promptLogits!));
    const f16 = await run(restored('F16', true));
    const maxAbs = Math.max(...Array.from(ref.promptLogits!, Math.abs));
    const err = Math.max(...Array.from(f16.promptLogits!, (x, i) => Math.abs(x - ref.promptLogits![i])));
    expect(err / maxAbs).toBeLessThan(1e-2);
  });
});
