/**
 * Chunked, batched prefill (issue #8): a prompt longer than prefillChunkTokens is prefilled
 * over several steps, with decode steps of the running requests between them; several
 * admitted requests share a prefill step (and their tiles one ViT pass).
 *
 * 1. Every golden case (the four families, text, images, multi-image batches) reproduces the
 *    PyTorch goldens' tokens with chunks of 5 tokens (image prompts cross chunk boundaries
 *    inside their <IMG_CONTEXT> runs), and the prompt logits equal the unchunked engine's.
 * 2. A long prompt admitted beside a running generation does not stall it: the running
 *    stream gains tokens between the long prompt's submit and its first token, one per
 *    chunk step, and prefillSteps counts the chunks.
 */
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import type { NativeSequenceInput } from '../../lib/nativeTypes.js';
import { fixturesDir, goldenFamilies, goldenSequence, readModelGolden, relErr, goldenSamples } from '../helpers/goldens.js';

const GREEDY = { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };

describe.each(goldenFamilies().filter((f) => f.startsWith('tiny-')))('%s', (family) => {
  const g = readModelGolden(family);
  const raw = g as unknown as { image_context_token_id: number };
  const dir = join(fixturesDir, g.model_dir);
  const samples = goldenSamples(g);

  async function run(prefillChunkTokens?: number) {
    const model = await EngineModel.load(dir, {
      imageContextTokenId: raw.image_context_token_id,
      ...(prefillChunkTokens !== undefined ? { prefillChunkTokens } : {}),
    });
    try {
      const r = await model.generate({
        sequences: samples.map(goldenSequence),
        maxNewTokens: Math.max(...samples.map((s) => s.generated_ids.length)),
        eosTokenIds: [g.eos_token_id],
        sampling: GREEDY,
        returnPromptLogits: true,
      }).promise;
      return { r, stats: model.stats() };
    } finally {
      model.dispose();
    }
  }

  test('chunks of 5 tokens: golden tokens, prompt logits as one unchunked prefill', async () => {
    const whole = await run();
    const chunked = await run(5);
    const promptTokens = samples.reduce((a, s) => a + s.input_ids.length, 0);
    expect(chunked.stats.prefillSteps).toBeGreaterThanOrEqual(Math.ceil(promptTokens / 5));
    expect(whole.stats.prefillSteps).toBeLessThan(chunked.stats.prefillSteps);
    for (let i = 0; i < samples.length; i++) {
      const want = samples[i].generated_ids;
      expect(Array.from(chunked.r[i].tokenIds)).toEqual(want.slice(0, chunked.r[i].tokenIds.length));
      expect(Array.from(chunked.r[i].tokenIds)).toEqual(Array.from(whole.r[i].tokenIds));
      expect(relErr(chunked.r[i].promptLogits as Float32Array, whole.r[i].promptLogits as Float32Array)).toBeLessThan(1e-5);
    }
  });
});

test('a long prompt is prefilled in chunks between decode steps of a running request', async () => {
  const g = readModelGolden('tiny-qwen2');
  const raw = g as unknown as { image_context_token_id: number };
  const model = await EngineModel.load(join(fixturesDir, g.model_dir), { imageContextTokenId: raw.image_context_token_id, prefillChunkTokens: 16, kvCacheTokens: 4096 });
  try {
    let bgTokens = 0;
    const bg = model.generate(
      { sequences: [{ inputIds: Int32Array.from([1, 2, 3, 4, 5]) }], maxNewTokens: 2000, eosTokenIds: [], sampling: GREEDY },
      { onToken: () => bgTokens++ },
    );
    for (let i = 0; bgTokens < 3 && i < 5000; i++) await new Promise((r) => setTimeout(r, 1));
    const long: NativeSequenceInput = { inputIds: Int32Array.from({ length: 160 }, (_, i) => 10 + (i % 50)) };
    const before = model.stats().prefillSteps;
    let atFirstToken = -1;
    const bgAtSubmit = bgTokens;
    const lg = model.generate(
      { sequences: [long], maxNewTokens: 2, eosTokenIds: [], sampling: GREEDY },
      {
        onToken: () => {
          if (atFirstToken < 0) atFirstToken = bgTokens;
        },
      },
    );
    await lg.promise;
    const chunks = model.stats().prefillSteps - before;
    bg.cancel();
    await bg.promise;
    expect(chunks).toBe(10); // 160 tokens in chunks of 16
    // the running request decoded between the chunks instead of waiting for all of them
    expect(atFirstToken - bgAtSubmit).toBeGreaterThanOrEqual(chunks - 1);
    expect(model.stats().kvFreeBlocks).toBe(model.stats().kvBlocks);
  } finally {
    model.dispose();
  }
});
