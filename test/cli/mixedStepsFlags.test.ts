/**
 * Who gets mixed steps: --mixed-steps / --no-mixed-steps reach the load options as given; with
 * neither, the engine decides by backend (lib/engine/mixedStepsDefault.ts: CUDA on, CPU off),
 * and the CPU engine loaded without the option really runs its steps apart while the same
 * overlap with `mixedSteps: true` does mix them (stats).
 */
import { join } from 'node:path';
import { Command } from 'commander';
import { addModelFlags, loadOptionsFromFlags } from '../../lib/cli/run.js';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { mixedStepsDefault } from '../../lib/engine/mixedStepsDefault.js';
import { goldenRequest, longRequest } from '../helpers/faultHooks.js';
import { type GoldenSample, fixturesDir, goldenSamples, readModelGolden } from '../helpers/goldens.js';

function flags(args: string[]) {
  const cmd = addModelFlags(new Command().exitOverride()).argument('[prompt]');
  cmd.parse(['node', 'internvl', '-m', 'some/model', ...args, 'hi']);
  return loadOptionsFromFlags(cmd.opts() as Parameters<typeof loadOptionsFromFlags>[0]);
}

test('--mixed-steps and --no-mixed-steps are passed on; neither leaves the choice to the engine', () => {
  expect(flags(['--mixed-steps']).mixedSteps).toBe(true);
  expect(flags(['--no-mixed-steps']).mixedSteps).toBe(false);
  expect('mixedSteps' in flags([])).toBe(false);
});

test('by default on for CUDA, off on the CPU backend', () => {
  expect(mixedStepsDefault('cuda')).toBe(true);
  expect(mixedStepsDefault('cpu')).toBe(false);
});

describe('a CPU engine loaded without the option', () => {
  const golden = readModelGolden('tiny-qwen2');
  const text = goldenSamples(golden).find((s) => s.images.length === 0) as GoldenSample;
  const imageContextTokenId = (golden as unknown as { image_context_token_id: number }).image_context_token_id;

  // A prompt prefilled in chunks while another request decodes: the steps that can be mixed.
  async function mixedStepsWhileOverlapping(mixedSteps: boolean | undefined): Promise<number> {
    const model = await EngineModel.load(join(fixturesDir, golden.model_dir), {
      imageContextTokenId,
      threads: 2,
      prefillChunkTokens: 8,
      prefixCache: false,
      ...(mixedSteps !== undefined ? { mixedSteps } : {}),
    });
    try {
      let release!: () => void;
      const decoding = new Promise<void>((r) => (release = r));
      const background = model.generate(longRequest(text), { onToken: () => release() });
      await decoding;
      await model.generate(goldenRequest(text, golden.eos_token_id)).promise;
      await background.promise;
      return model.stats().mixedSteps;
    } finally {
      model.dispose();
    }
  }

  test('runs prefill and decode apart, where mixedSteps: true mixes the same overlap', async () => {
    expect(await mixedStepsWhileOverlapping(true)).toBeGreaterThan(0);
    expect(await mixedStepsWhileOverlapping(undefined)).toBe(0);
  });
});
