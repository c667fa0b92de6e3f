/**
 * The scaffolding of a GPU suite that checks an engine feature against the fp32 CPU oracle on
 * every golden family: one passing test saying why when CUDA is not usable here, else per family
 * a CUDA model loaded with the feature's options beside the CPU engine the oracle runs on (its
 * KV cache large enough to teacher-force a 160-token run as 160 sequences in one request).
 */
import { join } from 'node:path';
import { EngineModel, type EngineLoadOptions } from '../../lib/engine/nativeModel.js';
import { longRequest } from './faultHooks.js';
import { type GoldenSample, type ModelGolden, fixturesDir, goldenFamilies, goldenSamples, readModelGolden } from './goldens.js';
import { cudaSkipReason } from './gpu.js';

export interface GpuGoldenFamily {
  golden: ModelGolden;
  samples: GoldenSample[];
  /** The longest prompt: a run of it is past tiny-phi3's original_max_position_embeddings (64)
   * from its first decode step, as in the oracle's prefills (a run that crosses it while
   * decoding switches RoPE factors with its early keys cached under the short ones, as
   * transformers does, which a prefill of the same prefix cannot reproduce). */
  background: GoldenSample;
  gpu(): EngineModel;
  cpu(): EngineModel;
}

export function describeGpuGoldenSuite(suite: string, gpuOptions: Partial<EngineLoadOptions>, body: (f: GpuGoldenFamily) => void): void {
  const reason = cudaSkipReason();
  if (reason) {
    test(`GPU ${suite} suite skipped: ${reason}`, () => {
      expect(reason.length).toBeGreaterThan(0);
    });
    return;
  }
  describe.each(goldenFamilies())('%s', (family) => {
    const golden = readModelGolden(family);
    const samples = goldenSamples(golden);
    const dir = join(fixturesDir, golden.model_dir);
    let gpu: EngineModel | undefined;
    let cpu: EngineModel | undefined;
    beforeAll(async () => {
      const imageContextTokenId = (golden as unknown as { image_context_token_id: number }).image_context_token_id;
      const common = { imageContextTokenId, prefixCache: false, kvCacheTokens: 8192 };
      gpu = await EngineModel.load(dir, { ...common, ...gpuOptions, backend: 'cuda' });
      cpu = await EngineModel.load(dir, { ...common, threads: 2, kvCacheTokens: 1 << 17 });
    });
    afterAll(() => {
      gpu?.dispose();
      cpu?.dispose();
    });
    const loaded = (m: EngineModel | undefined) => {
      if (!m) throw new Error('the suite did not load its models');
      return m;
    };
    body({
      golden,
      samples,
      background: samples.reduce((a, b) => (b.input_ids.length > a.input_ids.length ? b : a)),
      gpu: () => loaded(gpu),
      cpu: () => loaded(cpu),
    });
  });
}

/** Two long greedy runs of `background` on `model`, resolved once both are decoding (6 tokens in
 * all): what the suites then submit is prefilled beside them. Returns their generations. */
export async function twoDecoding(model: EngineModel, background: GoldenSample) {
  let tokens = 0;
  let release!: () => void;
  const started = new Promise<void>((r) => (release = r));
  const running = [longRequest(background), longRequest(background)].map((r) =>
    model.generate(r, {
      onToken: () => {
        if (++tokens === 6) release();
      },
    }),
  );
  await started;
  return running;
}
