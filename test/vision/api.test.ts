/**
 * loadImage as the other layers use it: bad input gives ERR_IMAGE naming the file
 * (or "buffer of N bytes") and the reason, options are validated sharp-style, config
 * defaults apply and can be overridden per image, several images combine, the caller's
 * stack is kept, and the JS thread stays free while an image is processed.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { InternVLError } from '../../lib/errors.js';
import { combineImages, imageOptionsFromConfig, loadImage, loadImages } from '../../lib/vision/image.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'vision', 'inputs');
/** Bytewise equality of float arrays (jest's toEqual is far too slow on millions of elements). */
function sameFloats(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

const landscape = join(fixtures, 'landscape.jpg'); // 900×600 → 3×2 grid + thumbnail
const tiny = join(fixtures, 'tiny.png'); // 20×20 → 1 tile
let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'internvl-vision-'));
  writeFileSync(join(tmp, 'empty.jpg'), Buffer.alloc(0));
  writeFileSync(join(tmp, 'notes.txt'), 'these are not pixels\n');
  const jpg = readFileSync(landscape);
  writeFileSync(join(tmp, 'truncated.jpg'), jpg.subarray(0, jpg.length >> 1));
  const png = readFileSync(join(fixtures, 'portrait.png'));
  writeFileSync(join(tmp, 'truncated.png'), png.subarray(0, png.length - 20));
  writeFileSync(join(tmp, 'header-only.png'), png.subarray(0, 40));
  writeFileSync(join(tmp, 'drawing.svg'), '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
  writeFileSync(join(tmp, 'bitmap.bmp'), Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)]));
  mkdirSync(join(tmp, 'folder.png'));
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('bad input → ERR_IMAGE naming the input and the reason', () => {
  // Every row has four entries: jest passes a done callback in place of a missing last argument.
  const cases: Array<[string, () => string | Uint8Array, RegExp, object]> = [
    ['a missing file', () => '/nonexistent/cat.jpg', /^Cannot read image \(\/nonexistent\/cat\.jpg\): file not found$/, {}],
    ['a directory', () => join(tmp, 'folder.png'), /^Cannot read image \(.*folder\.png\): it is a directory$/, {}],
    ['a zero-size file', () => join(tmp, 'empty.jpg'), /^Cannot read image \(.*empty\.jpg\): it is empty$/, {}],
    ['an empty buffer', () => new Uint8Array(0), /^Cannot read image \(buffer of 0 bytes\): it is empty$/, {}],
    ['a text file', () => join(tmp, 'notes.txt'), /^Cannot read image \(.*notes\.txt\): unsupported or unrecognized image format$/, {}],
    ['random bytes', () => Buffer.from('definitely not an image'), /^Cannot read image \(buffer of 23 bytes\): unsupported or unrecognized image format$/, {}],
    ['a truncated JPEG', () => join(tmp, 'truncated.jpg'), /^Cannot read image \(.*truncated\.jpg\): the file is truncated or corrupt \(VipsJpeg: premature end of JPEG image\)$/, {}],
    ['a truncated PNG', () => join(tmp, 'truncated.png'), /^Cannot read image \(.*truncated\.png\): the file is truncated or corrupt/, {}],
    ['a PNG cut inside its header', () => join(tmp, 'header-only.png'), /^Cannot read image \(.*header-only\.png\): the header is corrupt or truncated$/, {}],
    ['an SVG (not a raster format)', () => join(tmp, 'drawing.svg'), /^Cannot read image \(.*drawing\.svg\): unsupported image format 'svg'$/, {}],
    ['a BMP (not decoded by libvips)', () => join(tmp, 'bitmap.bmp'), /^Cannot read image \(.*bitmap\.bmp\): unsupported or unrecognized image format$/, {}],
    ['an image over the pixel limit', () => join(fixtures, 'very_wide.png'), /^Cannot read image \(.*very_wide\.png\): it has more than 1000000 pixels \(4000x300; raise maxPixels to allow it\)$/, { maxPixels: 1_000_000 }],
  ];
  test.each(cases)('%s', async (_what, input, message, options) => {
    const err = await loadImage(input(), options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InternVLError);
    expect(err).toMatchObject({ code: 'ERR_IMAGE', message: expect.stringMatching(message) });
  });

  test('the error carries the caller’s stack', async () => {
    async function callerOfLoadImage() {
      return loadImage('/nonexistent/dog.png');
    }
    const err = (await callerOfLoadImage().catch((e: unknown) => e)) as Error;
    expect(err.stack).toContain('callerOfLoadImage');
    expect(err.stack).toContain('api.test.ts');
  });
});

describe('options', () => {
  test.each([
    [{ maxTiles: 0 }, 'Expected integer between 1 and 40 for maxTiles but received 0 of type number'],
    [{ maxTiles: 41 }, 'Expected integer between 1 and 40 for maxTiles but received 41 of type number'],
    [{ maxTiles: 2.5 }, 'Expected integer between 1 and 40 for maxTiles but received 2.5 of type number'],
    [{ minTiles: 7, maxTiles: 6 }, 'Expected integer between 1 and 6 (maxTiles) for minTiles but received 7 of type number'],
    [{ useThumbnail: 'yes' }, 'Expected boolean for useThumbnail but received "yes" of type string'],
    [{ imageSize: 10 }, 'Expected integer between 14 and 4096 for imageSize but received 10 of type number'],
    [{ maxPixels: 0 }, 'Expected positive integer for maxPixels but received 0 of type number'],
    [{ autoOrient: 1 }, 'Expected boolean for autoOrient but received 1 of type number'],
  ])('%o → ERR_INVALID_ARG', async (options, message) => {
    await expect(loadImage(tiny, options as object)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message });
  });

  test('input must be a path or bytes', async () => {
    await expect(loadImage(42 as unknown as string)).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
      message: 'Expected file path, Buffer or Uint8Array for image but received 42 of type number',
    });
  });

  test('defaults come from the model config and are overridable per image', async () => {
    const config = { force_image_size: 448, min_dynamic_patch: 1, max_dynamic_patch: 6, use_thumbnail: true };
    const defaults = imageOptionsFromConfig(config);
    expect(defaults).toEqual({ imageSize: 448, minTiles: 1, maxTiles: 6, useThumbnail: true });
    expect(imageOptionsFromConfig({ forceImageSize: 224, maxDynamicPatch: 12, useThumbnail: false })).toEqual({
      imageSize: 224,
      maxTiles: 12,
      useThumbnail: false,
    });
    // 900×600 (aspect 1.5): 3×2 with max 6 or 12; 1×1 with max 1; no thumbnail when switched off.
    const a = await loadImage(landscape, defaults);
    expect([a.grid, a.tiles]).toEqual([[3, 2], 7]);
    const b = await loadImage(landscape, { ...defaults, maxTiles: 1 });
    expect([b.grid, b.tiles]).toEqual([[1, 1], 1]);
    const c = await loadImage(landscape, { ...defaults, useThumbnail: false });
    expect([c.grid, c.tiles]).toEqual([[3, 2], 6]);
    const d = await loadImage(landscape, { ...defaults, minTiles: 4, maxTiles: 4 }); // only 1×4, 2×2, 4×1 allowed
    expect([d.grid, d.tiles]).toEqual([[2, 2], 5]);
    const e = await loadImage(landscape, { imageSize: 224 });
    expect(e.pixelValues.length).toBe(e.tiles * 3 * 224 * 224);
    // a thumbnail of the 3×2 run is the last tile and equals a maxTiles 1 run's only tile
    const S = 448 * 448 * 3;
    expect(sameFloats(a.pixelValues.subarray(6 * S, 7 * S), b.pixelValues)).toBe(true);
  });

  test('autoOrient: true applies EXIF orientation 6 (a 640×320 JPEG is 320×640), false keeps it as stored', async () => {
    const file = join(fixtures, 'exif_rotated.jpg');
    const oriented = await loadImage(file);
    expect([oriented.width, oriented.height, oriented.grid]).toEqual([320, 640, [1, 2]]);
    const asStored = await loadImage(file, { autoOrient: false });
    expect([asStored.width, asStored.height, asStored.grid]).toEqual([640, 320, [2, 1]]);
  });

  test('a Buffer, a Uint8Array view and a path give the same tiles', async () => {
    const bytes = readFileSync(landscape);
    const padded = new Uint8Array(bytes.length + 16);
    padded.set(bytes, 8);
    const [a, b, c] = await Promise.all([loadImage(landscape), loadImage(bytes), loadImage(padded.subarray(8, 8 + bytes.length))]);
    expect(sameFloats(b.pixelValues, a.pixelValues)).toBe(true);
    expect(sameFloats(c.pixelValues, a.pixelValues)).toBe(true);
  });

  test('an aborted signal rejects with its reason', async () => {
    const controller = new AbortController();
    controller.abort(new InternVLError('ERR_ABORTED', 'stop'));
    await expect(loadImage(landscape, { signal: controller.signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });
});

describe('several images', () => {
  test('combineImages concatenates tiles and lists tiles per image', async () => {
    const a = await loadImage(landscape);
    const b = await loadImage(tiny);
    const both = combineImages([a, b]);
    expect(both.numPatchesList).toEqual([7, 1]);
    expect(both.tiles).toBe(8);
    expect(both.pixelValues.length).toBe(a.pixelValues.length + b.pixelValues.length);
    expect(sameFloats(both.pixelValues.subarray(0, a.pixelValues.length), a.pixelValues)).toBe(true);
    expect(sameFloats(both.pixelValues.subarray(a.pixelValues.length), b.pixelValues)).toBe(true);
    expect(combineImages([b]).numPatchesList).toEqual([1]);
    const loaded = await loadImages([landscape, tiny]);
    expect(loaded.numPatchesList).toEqual([7, 1]);
    expect(sameFloats(loaded.pixelValues, both.pixelValues)).toBe(true);
  });

  test('one bad image rejects the batch with that image named', async () => {
    await expect(loadImages([tiny, '/nonexistent/x.png'])).rejects.toMatchObject({
      code: 'ERR_IMAGE',
      message: 'Cannot read image (/nonexistent/x.png): file not found',
    });
  });
});

test('the JS thread stays free while a large image is processed', async () => {
  // 3000×2000 noisy JPEG, 12 tiles + thumbnail: count timer ticks while it runs.
  const W = 3000;
  const H = 2000;
  const raw = Buffer.alloc(W * H * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 2654435761) >>> 24;
  const jpeg = await sharp(raw, { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 80 }).toBuffer();
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const started = Date.now();
  const loaded = await loadImage(jpeg);
  const elapsed = Date.now() - started;
  clearInterval(timer);
  expect(loaded.tiles).toBe(7); // 3:2 → 3×2 + thumbnail
  // A blocked loop would tick about once; a free one about elapsed/5 times (slack for a busy machine).
  expect(ticks).toBeGreaterThanOrEqual(Math.min(5, Math.floor(elapsed / 20)));
});
