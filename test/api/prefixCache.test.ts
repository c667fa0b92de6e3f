/**
 * Multi-round KV reuse (issue #8): a finished chat leaves its KV pages in a prefix cache; a
 * later prompt that starts the same way (same ids, same image pixels) takes them over and
 * prefills only the rest, so turn 2 of an image chat runs neither the ViT nor the history.
 *
 * 1. Every family: the golden 'image' chat, then its golden 'two_turn' follow-up (history =
 *    the first turn, same image) gives the goldens' tokens, equal to a model without the
 *    cache; the cache served most of the prompt and the ViT did not run again.
 * 2. Same ids, other pixels: nothing of the image is reused (the answer is a fresh model's).
 * 3. Memory pressure: with a cache that holds one conversation, a request that needs every
 *    block evicts the cached pages and runs; afterwards every block is free again.
 */
import { join } from 'node:path';
import { InternVL } from '../../lib/model.js';
import { type GoldenCase, fixturesDir, goldenFamilies, goldenPixels, readModelGolden } from '../helpers/goldens.js';

function chatArgs(c: GoldenCase, pixels?: Float32Array) {
  const images = c.images ?? [];
  const pv = pixels ?? (images.length ? goldenPixels(images) : undefined);
  return {
    question: c.question as string,
    history: (c.history ?? []).map(([question, answer]) => ({ question, answer })),
    ...(pv ? { pixelValues: pv, numPatchesList: c.num_patches_list } : {}),
    generation: { maxNewTokens: 24 },
  };
}

describe.each(goldenFamilies().filter((f) => f.startsWith('tiny-')))('%s', (family) => {
  const golden = readModelGolden(family);
  const dir = join(fixturesDir, golden.model_dir);
  const turn1 = golden.cases.find((x) => x.name === 'image') as GoldenCase;
  const turn2 = golden.cases.find((x) => x.name === 'two_turn') as GoldenCase;

  test('turn 2 reuses turn 1: golden tokens, no ViT, most of the prompt from the cache', async () => {
    expect(turn2.images).toEqual(turn1.images);
    await using cached = await InternVL.load(dir, { backend: 'cpu' });
    await using fresh = await InternVL.load(dir, { backend: 'cpu', prefixCache: false });
    const r1 = await cached.chat(chatArgs(turn1));
    expect(r1.tokenIds).toEqual(turn1.generated_ids);
    const s1 = cached.stats();
    expect(s1.cachedBlocks).toBeGreaterThan(0);
    expect(s1.kvFreeBlocks).toBe(s1.kvBlocks); // cached pages count as free
    const r2 = await cached.chat(chatArgs(turn2));
    const s2 = cached.stats();
    const f2 = await fresh.chat(chatArgs(turn2));
    expect(r2.tokenIds).toEqual(turn2.generated_ids);
    expect(r2.tokenIds).toEqual(f2.tokenIds);
    expect(s2.vitTiles).toBe(s1.vitTiles); // the image rows came from the cache
    // the history (turn 1's prompt and answer) was not prefilled again
    expect(s2.prefixHitTokens - s1.prefixHitTokens).toBeGreaterThanOrEqual((turn1.input_ids?.length ?? 0) - 1);
    expect(fresh.stats().prefixHitTokens).toBe(0);
  });

  test('same ids with other pixels reuse nothing of the image', async () => {
    await using cached = await InternVL.load(dir, { backend: 'cpu' });
    await using fresh = await InternVL.load(dir, { backend: 'cpu', prefixCache: false });
    await cached.chat(chatArgs(turn1));
    const other = goldenPixels(turn2.images ?? []).map((v) => -v);
    const before = cached.stats().vitTiles;
    const r = await cached.chat(chatArgs(turn2, other));
    const f = await fresh.chat(chatArgs(turn2, other));
    expect(r.tokenIds).toEqual(f.tokenIds);
    expect(cached.stats().vitTiles - before).toBe(turn2.num_patches_list?.reduce((a, b) => a + b, 0));
  });
});

test('a request that needs the whole cache evicts cached conversations', async () => {
  const golden = readModelGolden('tiny-qwen2');
  const turn1 = golden.cases.find((x) => x.name === 'image') as GoldenCase;
  await using model = await InternVL.load(join(fixturesDir, golden.model_dir), { backend: 'cpu', kvCacheTokens: 256 });
  await model.chat(chatArgs(turn1));
  const s1 = model.stats();
  expect(s1.cachedBlocks).toBeGreaterThan(0);
  // a text prompt that with its new tokens needs (nearly) every block
  const r = await model.chat({ question: 'x '.repeat(60), generation: { maxNewTokens: 256 - 140 } });
  expect(r.tokenIds.length).toBeGreaterThan(0);
  const s2 = model.stats();
  expect(s2.kvFreeBlocks).toBe(s2.kvBlocks);
  expect(s2.runningRequests).toBe(0);
});
