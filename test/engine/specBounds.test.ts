/**
 * The addon checks a model spec's sizes itself (issue #11): a caller that skips
 * lib/config.ts and hands loadModel absurd numbers gets ERR_CONFIG naming the field,
 * before anything is allocated — not an overflowed shape or a petabyte allocation.
 */
import { readModelConfig } from '../../lib/config.js';
import { loadNative } from '../../lib/native.js';
import type { NativeModelSpec } from '../../lib/nativeTypes.js';
import { fixturesDir } from '../helpers/goldens.js';
import { join } from 'node:path';

const dir = join(fixturesDir, 'models', 'tiny-qwen2');
let spec: NativeModelSpec;
beforeAll(async () => {
  spec = (await readModelConfig(dir)).spec;
});

type Edit = (s: NativeModelSpec) => void;
const cases: Array<[string, Edit, RegExp]> = [
  ['2^30 decoder layers', (s) => void (s.llm.numLayers = 2 ** 30), /llm\.numLayers must be at most 1024/],
  ['a 2^40-token vocabulary', (s) => void (s.llm.vocabSize = 2 ** 40), /llm\.vocabSize must be at most 16777216/],
  ['a 2^25-wide ViT', (s) => void ((s.vision.hiddenSize = 2 ** 25), (s.vision.numHeads = 2 ** 15)), /vision\.hiddenSize must be at most/],
  ['head_dim 4096', (s) => void (s.llm.headDim = 4096), /llm\.headDim must be at most 512/],
  ['2^44 heads', (s) => void ((s.llm.numHeads = 2 ** 44), (s.llm.numKvHeads = 1)), /llm\.numHeads × headDim must be at most/],
  ['2^31 positions', (s) => void (s.llm.maxPositionEmbeddings = 2 ** 31), /llm\.maxPositionEmbeddings must be at most/],
  // a grid of 4096 patches per side: consistent otherwise (a multiple of the patch and of the shuffle)
  ['tiles 4096 patches wide', (s) => void (s.tileSize = s.vision.imageSize = s.vision.patchSize * 4096), /vision\.imageSize must be at most 16384/],
];

test.each(cases)('%s: ERR_CONFIG from the addon, before any allocation', async (_name, edit, message) => {
  const bad = structuredClone(spec);
  edit(bad);
  await expect(loadNative().loadModel(dir, bad, { backend: 'cpu', imageContextTokenId: 7, dummyWeights: true })).rejects.toMatchObject({
    code: 'ERR_CONFIG',
    message: expect.stringMatching(message),
  });
});

test('the unmodified spec loads (the cases above fail for their edit alone)', async () => {
  const m = await loadNative().loadModel(dir, structuredClone(spec), { backend: 'cpu', imageContextTokenId: 7, dummyWeights: true });
  expect(m.info().hiddenSize).toBe(spec.llm.hiddenSize);
  m.dispose();
});
