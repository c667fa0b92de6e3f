/**
 * The native checkpoint reader through the addon, as a user reaches it: mutated
 * safetensors headers (JSON values and raw bytes) in a copy of a fixture checkpoint
 * load or fail with ERR_CHECKPOINT, nothing else. The sanitizer-built harnesses in
 * fuzz/ go deeper; this runs in every `npm test` against the real addon.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { fixturesDir } from '../helpers/goldens.js';
import { assemble, splitSafetensors } from '../helpers/safetensors.js';
import { type Json, expectTyped, fuzzLoop, fuzzSeed, iterations, mutateBytes, mutateJson } from './mutate.js';

const src = join(fixturesDir, 'models', 'tiny-internlm2');
const IMG_CONTEXT = 802;
let dir: string;
let original: Buffer;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fuzz-ckpt-'));
  cpSync(src, dir, { recursive: true });
  original = readFileSync(join(src, 'model.safetensors'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function loadOrTyped(): Promise<'loaded' | 'refused'> {
  try {
    const m = await EngineModel.load(dir, { imageContextTokenId: IMG_CONTEXT, threads: 1, kvCacheTokens: 64 });
    m.dispose();
    return 'loaded';
  } catch (e) {
    expectTyped(e, ['ERR_CHECKPOINT']);
    return 'refused';
  }
}

test('mutated safetensors headers: the model loads or ERR_CHECKPOINT', async () => {
  const { headerJson, data } = splitSafetensors(original);
  const header = JSON.parse(headerJson) as Json;
  const outcomes = { loaded: 0, refused: 0 };
  await fuzzLoop('safetensors-header', fuzzSeed(51), iterations(500), async (rng, _i, record) => {
    let file: Buffer;
    if (rng.chance(0.7)) {
      file = assemble(JSON.stringify(mutateJson(rng, header, ['dtype', 'shape', 'data_offsets', '__metadata__', 'BF16', 'F32', 'I64'])), data);
    } else {
      // the length prefix and the header bytes themselves (the data section kept as is)
      const n = 8 + Number(original.readBigUInt64LE(0));
      file = Buffer.concat([mutateBytes(rng, original.subarray(0, n)), data]);
    }
    record(file.subarray(0, Math.min(file.length, 8 + 16384)));
    writeFileSync(join(dir, 'model.safetensors'), file);
    outcomes[await loadOrTyped()]++;
  });
  expect(outcomes.refused).toBeGreaterThan(50);
  writeFileSync(join(dir, 'model.safetensors'), original);
  expect(await loadOrTyped()).toBe('loaded');
});

test('regression (fuzz/safetensors_header.cpp under UBSan): a shape whose dims overflow int64 next to a 0 is refused', async () => {
  const { headerJson, data } = splitSafetensors(original);
  const h = JSON.parse(headerJson) as Record<string, unknown>;
  // [2^62, 2, 0] holds no element, but the product of its non-zero dims overflows int64
  h.empty = { dtype: 'BF16', shape: [4611686018427387904, 2, 0], data_offsets: [0, 0] };
  writeFileSync(join(dir, 'model.safetensors'), assemble(JSON.stringify(h), data));
  await expect(EngineModel.load(dir, { imageContextTokenId: IMG_CONTEXT })).rejects.toMatchObject({
    code: 'ERR_CHECKPOINT',
    message: "model.safetensors: tensor 'empty': shape is too large",
  });
  writeFileSync(join(dir, 'model.safetensors'), original);
});
