/**
 * Several sequences with the same picture in one prefill step (batchChat's "several questions
 * about one image", or concurrent requests) run its tiles through the ViT once
 * (Engine::encodeTiles compares the pixels): every sequence still gets its golden tokens, and
 * stats().vitTiles counts the distinct tiles only. Pixels that differ in one value are encoded
 * apart.
 */
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { GREEDY } from '../helpers/faultHooks.js';
import { type GoldenCase, fixturesDir, goldenFamilies, goldenSequence, readModelGolden } from '../helpers/goldens.js';

describe.each(goldenFamilies())('%s', (family) => {
  const golden = readModelGolden(family);
  const byName = (n: string) => golden.cases.find((c) => c.name === n) as GoldenCase & { generated_ids: number[] };
  const image = byName('image'); // one picture
  const two = byName('two_images'); // that picture and another
  const tilesOf = (c: { num_patches_list?: number[] }) => (c.num_patches_list ?? []).reduce((a, b) => a + b, 0);
  let model: EngineModel;
  beforeAll(async () => {
    model = await EngineModel.load(join(fixturesDir, golden.model_dir), {
      imageContextTokenId: (golden as unknown as { image_context_token_id: number }).image_context_token_id,
      threads: 2,
      prefixCache: false,
    });
  });
  afterAll(() => model?.dispose());

  const run = async (cases: Array<GoldenCase & { generated_ids: number[] }>, tweak?: (px: Float32Array, i: number) => void) => {
    const sequences = cases.map((c, i) => {
      const s = goldenSequence(c as never);
      if (tweak && s.pixelValues) {
        s.pixelValues = Float32Array.from(s.pixelValues);
        tweak(s.pixelValues, i);
      }
      return s;
    });
    const before = model.stats().vitTiles;
    const maxNewTokens = Math.max(...cases.map((c) => c.generated_ids.length));
    const res = await model.generate({ sequences, maxNewTokens, eosTokenIds: [golden.eos_token_id], sampling: GREEDY }).promise;
    return { res, tiles: model.stats().vitTiles - before };
  };

  test('the same picture three times in one request: golden tokens each, its tiles encoded once', async () => {
    const { res, tiles } = await run([image, image, image, two]);
    for (const [i, c] of [image, image, image, two].entries()) expect(Array.from(res[i].tokenIds)).toEqual(c.generated_ids);
    // `two` starts with other bytes than `image` (two pictures, more tiles): encoded apart
    expect(tiles).toBe(tilesOf(image) + tilesOf(two));
  });

  test('one changed pixel value makes a different picture: encoded apart', async () => {
    const { res, tiles } = await run([image, image], (px, i) => {
      if (i === 1) px[px.length - 1] += 0.5;
    });
    expect(Array.from(res[0].tokenIds)).toEqual(image.generated_ids);
    expect(res[1].tokenIds.length).toBeGreaterThan(0);
    expect(tiles).toBe(2 * tilesOf(image));
  });
});
