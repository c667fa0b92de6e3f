/**
 * --dummy-weights: a model loads from config.json alone (no safetensors) with the
 * shapes the config implies, and runs — what real-shape benchmarks rely on.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readModelConfig } from '../../lib/config.js';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { fixturesDir } from '../helpers/goldens.js';

const greedy = { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };

test.each(['tiny-yi', 'tiny-internlm2', 'tiny-qwen2', 'tiny-phi3'])('%s: loads from config.json alone and generates', async (family) => {
  const dir = mkdtempSync(join(tmpdir(), 'ivl-dummy-'));
  try {
    copyFileSync(join(fixturesDir, 'models', family, 'config.json'), join(dir, 'config.json'));
    const config = await readModelConfig(dir);
    const real = await EngineModel.load(join(fixturesDir, 'models', family), { imageContextTokenId: 7, config });
    const dummy = await EngineModel.load(dir, { imageContextTokenId: 7, config, dummyWeights: true });
    const { vocabSize: _v, backendDetail: _b, ...shape } = real.info() as unknown as Record<string, unknown>;
    expect(dummy.info()).toMatchObject(shape);
    const pixels = new Float32Array(3 * config.forceImageSize ** 2).fill(0.5);
    const ids = Int32Array.from([1, 2, 3, ...Array(config.numImageToken).fill(7), 4, 5]);
    const [r] = await dummy.generate({ sequences: [{ inputIds: ids, pixelValues: pixels, tiles: 1 }], maxNewTokens: 6, eosTokenIds: [], sampling: greedy }).promise;
    expect(r.tokenIds).toHaveLength(6);
    expect(r.finishReason).toBe('length');
    const embeds = await dummy.encodeImages(pixels, 1);
    expect(embeds.every(Number.isFinite)).toBe(true);
    real.dispose();
    dummy.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without dummyWeights the same directory is a checkpoint error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ivl-dummy-'));
  try {
    copyFileSync(join(fixturesDir, 'models', 'tiny-yi', 'config.json'), join(dir, 'config.json'));
    await expect(EngineModel.load(dir, { imageContextTokenId: 7 })).rejects.toMatchObject({ code: 'ERR_CHECKPOINT' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
