// The public API on the CUDA backend (GPU machine only; elsewhere the suite is skipped
// with the reason, and the CPU-side check below asserts the clear error instead).
import { join } from 'node:path';
import { InternVL } from '../../lib/model.js';
import { runtimeInfo } from '../../lib/native.js';
import { type GoldenCase, fixturesDir, readModelGolden } from '../helpers/goldens.js';

const info = runtimeInfo();
const hasCuda = info.backends.includes('cuda');
const describeGpu = hasCuda ? describe : describe.skip;

describeGpu(`InternVL on CUDA${hasCuda ? '' : ` (skipped: ${info.cuda.problem ?? 'no CUDA'})`}`, () => {
  test.each(['tiny-yi', 'tiny-internlm2', 'tiny-qwen2', 'tiny-phi3'])('%s: chat with a real image runs on the GPU', async (family) => {
    const golden = readModelGolden(family);
    const c = golden.cases.find((x) => x.name === 'image') as GoldenCase;
    await using model = await InternVL.load(join(fixturesDir, golden.model_dir), { backend: 'cuda' });
    expect(model.info.backend).toBe('cuda');
    const r = await model.chat({ question: c.question as string, images: [join(fixturesDir, golden.images.wide.file)], generation: { maxNewTokens: 24 } });
    expect(r.usage.promptTokens).toBe(c.input_ids?.length);
    expect(['stop', 'length']).toContain(r.finishReason);
    expect(r.tokenIds.length).toBeGreaterThan(0);
    expect(r.tokenIds.length).toBeLessThanOrEqual(24);
    // token-level parity with the fp32 goldens (near-ties aside) is test/gpu/backend.test.ts
  });

  test("dtype 'int8' on the CUDA backend: chat runs", async () => {
    const golden = readModelGolden('tiny-yi');
    const c = golden.cases.find((x) => x.name === 'image') as GoldenCase;
    await using model = await InternVL.load(join(fixturesDir, golden.model_dir), { backend: 'cuda', dtype: 'int8' });
    const r = await model.chat({ question: c.question as string, images: [join(fixturesDir, golden.images.wide.file)], generation: { maxNewTokens: 8 } });
    expect(r.usage.promptTokens).toBe(c.input_ids?.length);
    expect(r.tokenIds.length).toBeGreaterThan(0);
    // logit-level checks of the int8 path are test/gpu/int8.test.ts
  });
});

if (!hasCuda) {
  test('asking for the CUDA backend without a usable GPU is a clear ERR_CUDA', async () => {
    await expect(InternVL.load(join(fixturesDir, 'models', 'tiny-yi'), { backend: 'cuda' })).rejects.toMatchObject({
      code: 'ERR_CUDA',
      message: expect.stringContaining("backend 'cuda' requested but no CUDA device is usable"),
    });
  });
}
