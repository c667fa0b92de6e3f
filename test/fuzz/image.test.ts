/**
 * Property-based fuzzing of image bytes through lib/vision (sharp decoding, the GIF
 * palette reader, tiling, the native resampler): mutated JPEG / PNG / GIF / WebP /
 * TIFF files made from the fixture images give tiles or InternVLError ERR_IMAGE,
 * nothing else, and never hang. Also: a header that claims a decompression bomb is
 * refused from the header alone.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { gifTransparentColour } from '../../lib/vision/decode.js';
import { loadImage } from '../../lib/vision/image.js';
import { fixturesDir } from '../helpers/goldens.js';
import { expectTyped, fuzzLoop, fuzzSeed, iterations, mutateBytes } from './mutate.js';

const S = 28; // small tiles: the decoder is what is fuzzed, not the resampler's speed
let seeds: Buffer[] = [];

beforeAll(async () => {
  const wide = readFileSync(join(fixturesDir, 'images', 'wide.jpg'));
  const tall = readFileSync(join(fixturesDir, 'images', 'tall.png'));
  const small = sharp(wide).resize(40, 30);
  const alpha = sharp(tall).resize(24, 36).ensureAlpha(0.5);
  seeds = [
    await small.clone().jpeg({ quality: 80 }).toBuffer(),
    await small.clone().jpeg({ progressive: true }).toBuffer(),
    await small.clone().png({ palette: true, colours: 16 }).toBuffer(),
    await alpha.clone().png().toBuffer(),
    await alpha.clone().gif().toBuffer(), // transparent GIF: lib/vision/decode.ts reads its palette itself
    await small.clone().gif({ colours: 8 }).toBuffer(),
    await small.clone().webp({ quality: 60 }).toBuffer(),
    await small.clone().tiff().toBuffer(),
    await small.clone().grayscale().png().toBuffer(),
    await sharp(wide).resize(40, 30).toColourspace('cmyk').jpeg().toBuffer(),
  ];
  for (const s of seeds) expect(s.length).toBeLessThan(20_000);
});

test('mutated image files: tiles or ERR_IMAGE', async () => {
  const outcomes = { decoded: 0, refused: 0 };
  await fuzzLoop('image-bytes', fuzzSeed(31), iterations(1500), async (rng, _i, record) => {
    const input = mutateBytes(rng, rng.pick(seeds), seeds);
    record(input);
    try {
      const r = await loadImage(input, { imageSize: S, maxTiles: 4, autoOrient: rng.chance(0.5) });
      if (!(r.tiles >= 1 && r.tiles <= 5) || r.pixelValues.length !== r.tiles * 3 * S * S) {
        throw new Error(`bad result: ${r.tiles} tiles, ${r.pixelValues.length} values`);
      }
      for (const v of r.pixelValues) if (!Number.isFinite(v)) throw new Error('a non-finite pixel value');
      outcomes.decoded++;
    } catch (e) {
      expectTyped(e, ['ERR_IMAGE']);
      outcomes.refused++;
    }
  });
  // both outcomes are reached: the mutations are neither all harmless nor all fatal
  expect(outcomes.decoded).toBeGreaterThan(20);
  expect(outcomes.refused).toBeGreaterThan(20);
});

test('the GIF palette reader never throws or runs past its input', async () => {
  const gifs = seeds.filter((b) => b.subarray(0, 3).toString('latin1') === 'GIF');
  expect(gifs.length).toBe(2);
  await fuzzLoop('gif-palette', fuzzSeed(32), iterations(20000), (rng, _i, record) => {
    const input = mutateBytes(rng, rng.pick(gifs), gifs);
    record(input);
    const c = gifTransparentColour(input);
    if (c !== undefined && (c.length !== 3 || c.some((x) => !Number.isInteger(x) || x < 0 || x > 255))) {
      throw new Error(`colour ${JSON.stringify(c)}`);
    }
  });
});

test('a header claiming 10^10 pixels is refused before decoding', async () => {
  // A 1×1 PNG whose IHDR says 100000 × 100000 (CRC fixed up): nothing is decoded or allocated.
  const png = Buffer.from(await sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } }).png().toBuffer());
  png.writeUInt32BE(100_000, 16);
  png.writeUInt32BE(100_000, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  const rssBefore = process.memoryUsage().rss;
  await expect(loadImage(png, { imageSize: S })).rejects.toMatchObject({
    code: 'ERR_IMAGE',
    message: expect.stringContaining('it has more than 178956970 pixels (100000x100000'),
  });
  expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 << 20);
});

function crc32(b: Uint8Array): number {
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
