/**
 * Load progress: the native loader reports each checkpoint tensor once, in order,
 * through a thread-safe function; every step reaches JS before load() resolves,
 * totals equal the checkpoint's tensors and bytes, and a throwing callback fails the load.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { InternVL, type LoadProgress } from '../../lib/index.js';
import type { NativeLoadProgress } from '../../lib/nativeTypes.js';
import { fixturesDir } from '../helpers/goldens.js';
import { splitSafetensors } from '../helpers/safetensors.js';

const dir = join(fixturesDir, 'models', 'tiny-internlm2'); // one safetensors file
const IMG_CONTEXT = 802;

function checkpointTotals(): { tensors: number; bytes: number } {
  const { header } = splitSafetensors(readFileSync(join(dir, 'model.safetensors')));
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__') as Array<[string, { data_offsets: [number, number] }]>;
  return { tensors: entries.length, bytes: entries.reduce((a, [, t]) => a + t.data_offsets[1] - t.data_offsets[0], 0) };
}

test('EngineModel.load reports every tensor once, monotonically, ending at the totals before it resolves', async () => {
  const steps: NativeLoadProgress[] = [];
  let resolved = false;
  const loading = EngineModel.load(dir, { imageContextTokenId: IMG_CONTEXT, threads: 1, onProgress: (p) => steps.push({ ...p, resolvedYet: resolved } as NativeLoadProgress) });
  const model = await loading;
  resolved = true;
  try {
    const { tensors, bytes } = checkpointTotals();
    expect(steps[0]).toMatchObject({ tensorsDone: 0, bytesDone: 0, tensorsTotal: tensors, bytesTotal: bytes });
    expect(steps.at(-1)).toMatchObject({ tensorsDone: tensors, bytesDone: bytes });
    // one step per tensor, plus the opening 0 and the closing repeat of the totals
    expect(steps).toHaveLength(tensors + 2);
    for (let i = 1; i < steps.length; i++) {
      expect(steps[i].tensorsDone).toBeGreaterThanOrEqual(steps[i - 1].tensorsDone);
      expect(steps[i].bytesDone).toBeGreaterThanOrEqual(steps[i - 1].bytesDone);
      expect([steps[i].tensorsTotal, steps[i].bytesTotal]).toEqual([tensors, bytes]);
    }
    expect(steps.every((s) => (s as unknown as { resolvedYet: boolean }).resolvedYet === false)).toBe(true);
  } finally {
    model.dispose();
  }
});

test('InternVL.load passes progress with the device; int8 and dummy weights report too', async () => {
  const steps: LoadProgress[] = [];
  const model = await InternVL.load(dir, { backend: 'cpu', threads: 1, dtype: 'int8', onProgress: (p) => steps.push(p) });
  model.dispose();
  expect(steps.length).toBeGreaterThan(2);
  expect(steps.every((s) => s.device === 'cpu')).toBe(true);
  const last = steps.at(-1) as LoadProgress;
  expect([last.tensorsDone, last.bytesDone]).toEqual([last.tensorsTotal, last.bytesTotal]);

  const dummy: NativeLoadProgress[] = [];
  const d = await EngineModel.load(dir, { imageContextTokenId: IMG_CONTEXT, threads: 1, dummyWeights: true, onProgress: (p) => dummy.push(p) });
  d.dispose();
  expect(dummy.at(-1)?.tensorsDone).toBe(checkpointTotals().tensors);
});

test('a throwing onProgress fails the load with its error; a non-function is ERR_INVALID_ARG', async () => {
  const boom = new Error('progress callback failed');
  await expect(
    EngineModel.load(dir, {
      imageContextTokenId: IMG_CONTEXT,
      threads: 1,
      onProgress: () => {
        throw boom;
      },
    }),
  ).rejects.toBe(boom);
  await expect(InternVL.load(dir, { backend: 'cpu', onProgress: 42 as unknown as () => void })).rejects.toMatchObject({
    code: 'ERR_INVALID_ARG',
    message: expect.stringContaining('onProgress'),
  });
});

test('a failing load rejects with its own error, progress or not', async () => {
  const steps: NativeLoadProgress[] = [];
  await expect(
    EngineModel.load(join(fixturesDir, 'models', 'no-such-model'), { imageContextTokenId: IMG_CONTEXT, onProgress: (p) => steps.push(p) }),
  ).rejects.toMatchObject({ code: 'ERR_CONFIG' });
});
