/**
 * Device maps (issue #10) on the CPU backend, where every logical device is its own
 * CpuBackend: the split's whole code path (weights per device, KV pages per layer's device,
 * hidden states copied between devices, the tied head copied to its device, vision output
 * moved to the embedding device) runs in CI.
 *
 * 1. 'card' reproduces the per-GPU layer counts SPEC.md §7 lists for the model card's
 *    split_model (L = 60 and 80 on 2, 4 and 8 GPUs).
 * 2. Bad maps are ERR_INVALID_ARG naming the problem; a map that does not fit is ERR_OOM
 *    with the sizes.
 * 3. Every golden case generates the PyTorch goldens' tokens with the model split over
 *    two and three devices (ViT, embeddings and head on different devices than the layers
 *    around them), and the prompt logits equal the unsplit engine's.
 */
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readModelConfig } from '../../lib/config.js';
import { autoDeviceMap, cardDeviceMap, formatDevicePlan, planDeviceMap, resolveDeviceMap } from '../../lib/deviceMap.js';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import type { NativeModelSpec } from '../../lib/nativeTypes.js';
import { fixturesDir, goldenFamilies, goldenSequence, readModelGolden, relErr, goldenSamples } from '../helpers/goldens.js';

const counts = (layers: number[], gpus: number) => Array.from({ length: gpus }, (_, g) => layers.filter((d) => d === g).length);

describe("'card' device map (SPEC.md §7)", () => {
  test.each([
    [60, 4, [10, 18, 18, 14]],
    [60, 8, [5, 8, 8, 8, 8, 8, 8, 7]],
    [80, 2, [28, 52]],
    [80, 4, [13, 23, 23, 21]],
  ])('L=%i on %i GPUs: %j layers per GPU, last layer on GPU 0', (L, G, want) => {
    const m = cardDeviceMap(L, G);
    expect(counts(m.layers, G)).toEqual(want);
    expect(m.layers[L - 1]).toBe(0);
    expect([m.vision, m.embed, m.head]).toEqual([0, 0, 0]);
  });
});

describe('device map checks', () => {
  let spec: NativeModelSpec;
  beforeAll(async () => {
    spec = (await readModelConfig(join(fixturesDir, 'models', 'tiny-yi'))).spec;
  });
  const plan = { dtype: 'bf16' as const, kvCacheTokens: 1024 };

  test('wrong length, negative device, a device with nothing, a GPU that is not there', () => {
    const L = spec.llm.numLayers;
    expect(() => resolveDeviceMap(spec, [0], { ...plan, gpuFreeBytes: [] })).toThrow(/layers lists 1 devices but the model has \d+ decoder layers/);
    expect(() => resolveDeviceMap(spec, new Array(L).fill(-1), { ...plan, gpuFreeBytes: [] })).toThrow(/layer 0 is assigned -1/);
    expect(() => resolveDeviceMap(spec, new Array(L).fill(2), { ...plan, gpuFreeBytes: [] })).toThrow(/device 0 holds nothing|device 1 holds nothing/);
    expect(() => resolveDeviceMap(spec, new Array(L).fill(1), { ...plan, gpuFreeBytes: [1e12] })).toThrow(
      /device 1 is GPU 1, but 1 GPU is available/,
    );
    expect(() => resolveDeviceMap(spec, 'both' as never, { ...plan, gpuFreeBytes: [] })).toThrow(/deviceMap must be 'auto', 'card'/);
    try {
      resolveDeviceMap(spec, [0], { ...plan, gpuFreeBytes: [] });
    } catch (e) {
      expect((e as { code: string }).code).toBe('ERR_INVALID_ARG');
    }
  });

  test('a plan that does not fit is ERR_OOM with the sizes', () => {
    expect(() => planDeviceMap(spec, 'auto', { ...plan, gpuFreeBytes: [1 << 20] })).toThrow(
      expect.objectContaining({ code: 'ERR_OOM', message: expect.stringMatching(/GPU 0 needs [\d.]+ GiB .* but has [\d.]+ [MG]iB free/) }),
    );
  });

  test("'auto' on two equal GPUs puts fewer layers on GPU 0 (it also holds the ViT, embeddings and head)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ivl-map-'));
    copyFileSync(join(fixturesDir, '..', '..', 'bench', 'configs', 'InternVL2-40B.json'), join(dir, 'config.json'));
    const spec40 = (await readModelConfig(dir)).spec;
    const m = autoDeviceMap(spec40, { ...plan, gpuFreeBytes: [80 * 2 ** 30, 80 * 2 ** 30] });
    const [a, b] = counts(m.layers, 2);
    expect(a + b).toBe(60);
    expect(a).toBeLessThan(b);
    // layers stay in order: device ids never go back
    expect(m.layers).toEqual([...m.layers].sort((x, y) => x - y));
    const p = planDeviceMap(spec40, m, { ...plan, gpuFreeBytes: [80 * 2 ** 30, 80 * 2 ** 30] });
    expect(formatDevicePlan(p)).toMatch(/^device +gpu +layers/);
    expect(p.devices[0].modules).toEqual(['vision', 'embed', 'head']);
  });
});

describe.each(goldenFamilies().filter((f) => f.startsWith('tiny-')))('%s split across CPU devices', (family) => {
  const g = readModelGolden(family);
  const raw = g as unknown as { image_context_token_id: number };
  const dir = join(fixturesDir, g.model_dir);
  const samples = goldenSamples(g);
  const run = async (deviceMap?: Parameters<typeof EngineModel.load>[1]['deviceMap']) => {
    const model = await EngineModel.load(dir, { imageContextTokenId: raw.image_context_token_id, threads: 1, ...(deviceMap ? { deviceMap } : {}) });
    try {
      const r = await model.generate({
        sequences: samples.map(goldenSequence),
        maxNewTokens: Math.max(...samples.map((s) => s.generated_ids.length)),
        eosTokenIds: [g.eos_token_id],
        sampling: { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
        returnPromptLogits: true,
      }).promise;
      return { r, info: model.info(), plan: model.devicePlan };
    } finally {
      model.dispose();
    }
  };

  test('two and three devices: golden tokens, prompt logits as unsplit', async () => {
    const whole = await run();
    const L = (await readModelConfig(dir)).spec.llm.numLayers;
    const half = Math.ceil(L / 2);
    const maps = [
      { layers: Array.from({ length: L }, (_, i) => (i < half ? 0 : 1)) }, // layers split, rest on 0
      { layers: Array.from({ length: L }, (_, i) => (i % 2 === 0 ? 1 : 2)), vision: 2, embed: 0, head: 1 }, // every boundary crossed
    ];
    for (const deviceMap of maps) {
      const split = await run(deviceMap);
      expect(split.plan?.devices.length).toBe(Math.max(...deviceMap.layers, deviceMap.vision ?? 0, deviceMap.embed ?? 0, deviceMap.head ?? 0) + 1);
      expect(split.info.backendDetail).toMatch(/map: vision \d, embed \d, head \d, layers/);
      for (let i = 0; i < samples.length; i++) {
        const want = samples[i].generated_ids;
        expect(Array.from(split.r[i].tokenIds)).toEqual(want.slice(0, split.r[i].tokenIds.length));
        expect(split.r[i].tokenIds.length).toBe(whole.r[i].tokenIds.length);
        expect(relErr(split.r[i].promptLogits as Float32Array, whole.r[i].promptLogits as Float32Array)).toBeLessThan(1e-5);
      }
    }
  });
});
