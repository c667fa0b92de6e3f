/**
 * Device maps on the GPU (issue #10). With two or more GPUs the split crosses real devices
 * (peer copies); with one, the map's logical devices share GPU 0 (physical [0, 0, 0]), which
 * still runs every cross-backend path. Every fixture family, greedy over its golden cases:
 * the tokens equal those of the same model on one device, and the prompt logits agree to
 * bf16 rounding (the same kernels on the same GPU model: in practice identical).
 * Also int8 split over the devices (the map works with quantized weights).
 */
import { join } from 'node:path';
import { readModelConfigSync } from '../../lib/config.js';
import { EngineModel, type EngineLoadOptions } from '../../lib/engine/nativeModel.js';
import { runtimeInfo } from '../../lib/native.js';
import { cudaSkipReason } from '../helpers/gpu.js';
import { fixturesDir, goldenFamilies, goldenSequence, readModelGolden, relErr, goldenSamples } from '../helpers/goldens.js';

const info = runtimeInfo();
const reason = cudaSkipReason();
const gpus = info.cuda.devices.length;
const report: string[] = [];
afterAll(() => {
  if (report.length) console.log(`device map on ${gpus} GPU(s):\n${report.join('\n')}`);
});

if (reason) {
  test(`GPU device-map suite skipped: ${reason}`, () => {
    expect(reason.length).toBeGreaterThan(0);
  });
}

const families = reason ? [] : goldenFamilies().filter((f) => f.startsWith('tiny-'));
for (const family of families) describe(`CUDA device map: ${family}`, () => {
  const g = readModelGolden(family);
  const raw = g as unknown as { image_context_token_id: number };
  const dir = join(fixturesDir, g.model_dir);
  const samples = goldenSamples(g);
  const run = async (options: Partial<EngineLoadOptions>) => {
    const model = await EngineModel.load(dir, { backend: 'cuda', imageContextTokenId: raw.image_context_token_id, ...options });
    try {
      const r = await model.generate({
        sequences: samples.map(goldenSequence),
        maxNewTokens: Math.max(...samples.map((s) => s.generated_ids.length)),
        eosTokenIds: [g.eos_token_id],
        sampling: { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 },
        returnPromptLogits: true,
      }).promise;
      return { r, detail: model.info().backendDetail, devices: model.stats().deviceMemory.length };
    } finally {
      model.dispose();
    }
  };

  test.each(['bf16', 'int8'] as const)('%s: split = one device (tokens identical, logits to bf16 rounding)', async (dtype) => {
    const whole = await run({ dtype });
    const L = readModelConfigSync(dir).spec.llm.numLayers;
    const physical = gpus >= 2 ? [0, 1, gpus >= 3 ? 2 : 0] : [0, 0, 0];
    const deviceMap = { layers: Array.from({ length: L }, (_, i) => (i < L / 2 ? 1 : 2)), vision: 1, embed: 0, head: 2, physical };
    const split = await run({ dtype, deviceMap });
    expect(split.devices).toBe(3);
    let worst = 0;
    for (let i = 0; i < samples.length; i++) {
      expect(Array.from(split.r[i].tokenIds)).toEqual(Array.from(whole.r[i].tokenIds));
      worst = Math.max(worst, relErr(split.r[i].promptLogits as Float32Array, whole.r[i].promptLogits as Float32Array));
    }
    report.push(`  ${family} ${dtype}: ${samples.length} sequences, tokens identical, logits max rel ${worst.toExponential(2)}; ${split.detail}`);
    expect(worst).toBeLessThan(1e-2);
  });
});
