/**
 * Preprocessing against goldens made by the model card's own code (PIL 9.4 +
 * torchvision 0.14 under CPython 3.11; test/fixtures/vision/make_vision_goldens.py):
 * tiles value for value, decoding of colour modes, Image.resize at awkward sizes,
 * tiling orders and choices, torchvision's normalization, video frame indices.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { loadNative } from '../../lib/native.js';
import { decodeRgb } from '../../lib/vision/decode.js';
import { loadImage } from '../../lib/vision/image.js';
import { candidateGrids, chooseGrid, planTiles } from '../../lib/vision/tiling.js';
import { frameIndices } from '../../lib/vision/video.js';

interface Goldens {
  versions: Record<string, string>;
  tile_size: number;
  images: Record<
    string,
    {
      file: string;
      max_num: number;
      auto_orient: boolean;
      decoded_size: [number, number];
      grid: [number, number];
      tiles: number;
      canvas: string;
      thumbnail?: string;
      pixel_values_samples: Array<[number, number, number, number, number]>;
    }
  >;
  decode: Record<string, { file: string; pil_mode: string; expected: string }>;
  resize: Array<{ input: string; expected: string; from: [number, number]; to: [number, number] }>;
  target_ratios: Record<string, Array<[number, number]>>;
  target_ratios_min: Record<string, Array<[number, number]>>;
  choices: Array<{ size: [number, number]; max_num: number; grid: [number, number] }>;
  video_indices: Array<{ bound: [number, number] | null; fps: number; max_frame: number; num_segments: number; indices: number[] }>;
  normalized_bytes: number[][];
}

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'vision');
const g = JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as Goldens;
const S = g.tile_size;

async function png(path: string): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(join(dir, path)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(3);
  return { data, width: info.width, height: info.height };
}

/** The expected tiles [T, S, S, 3] from the canvas (+ thumbnail) PNGs. */
async function expectedTiles(name: string): Promise<Uint8Array> {
  const e = g.images[name];
  const canvas = await png(e.canvas);
  const [cols, rows] = e.grid;
  expect([canvas.width, canvas.height]).toEqual([cols * S, rows * S]);
  const out = new Uint8Array(e.tiles * S * S * 3);
  for (let t = 0; t < cols * rows; t++) {
    const c = t % cols;
    const r = Math.floor(t / cols);
    for (let y = 0; y < S; y++) {
      const from = ((r * S + y) * canvas.width + c * S) * 3;
      out.set(canvas.data.subarray(from, from + S * 3), (t * S + y) * S * 3);
    }
  }
  if (e.thumbnail) out.set((await png(e.thumbnail)).data, cols * rows * S * S * 3);
  return out;
}

function compare(ours: Uint8Array, theirs: Uint8Array): { exact: number; within1: number; maxDiff: number } {
  expect(ours.length).toBe(theirs.length);
  let exact = 0;
  let within1 = 0;
  let maxDiff = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i] - theirs[i]);
    if (d === 0) exact++;
    if (d <= 1) within1++;
    if (d > maxDiff) maxDiff = d;
  }
  return { exact, within1, maxDiff };
}

const parity: string[] = [];
afterAll(() => {
  // eslint-disable-next-line no-console
  if (parity.length) console.log(`tile parity vs the card's code (PIL ${g.versions.pillow}, torchvision ${g.versions.torchvision}):\n${parity.join('\n')}`);
});

describe("tiles equal the model card's load_image", () => {
  test.each(Object.keys(g.images))('%s', async (name) => {
    const e = g.images[name];
    const rgb = await decodeRgb(join(dir, e.file), { autoOrient: e.auto_orient });
    expect([rgb.width, rgb.height]).toEqual(e.decoded_size);
    const plan = planTiles(rgb.width, rgb.height, { minTiles: 1, maxTiles: e.max_num, useThumbnail: true, tileSize: S });
    expect([...plan.grid]).toEqual(e.grid);
    expect(plan.tiles).toBe(e.tiles);
    const ours = await loadNative().tilesU8(rgb.data, rgb.width, rgb.height, plan.grid[0], plan.grid[1], S, plan.thumbnail);
    const { exact, within1, maxDiff } = compare(ours, await expectedTiles(name));
    parity.push(`  ${name}: ${exact}/${ours.length} uint8 values exact, ${within1} within 1, max diff ${maxDiff}`);
    expect(within1 / ours.length).toBeGreaterThanOrEqual(0.999);
    expect(exact).toBe(ours.length); // reached: bit-exact; any drift is a bug

    // End to end: loadImage's tensor is the normalization of those bytes, and equals
    // torchvision's own pixel_values at the sampled points.
    const loaded = await loadImage(join(dir, e.file), { autoOrient: e.auto_orient, maxTiles: e.max_num });
    expect(loaded.tiles).toBe(e.tiles);
    expect([...loaded.grid]).toEqual(e.grid);
    expect([loaded.width, loaded.height]).toEqual(e.decoded_size);
    expect(loaded.pixelValues.length).toBe(e.tiles * 3 * S * S);
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    let worst = 0;
    for (let t = 0; t < e.tiles; t++) {
      for (let p = 0; p < S * S; p += 7) {
        for (let c = 0; c < 3; c++) {
          const want = (ours[(t * S * S + p) * 3 + c] / 255 - mean[c]) / std[c];
          worst = Math.max(worst, Math.abs(loaded.pixelValues[(t * 3 + c) * S * S + p] - want));
        }
      }
    }
    expect(worst).toBeLessThanOrEqual(1e-6);
    for (const [t, c, y, x, v] of e.pixel_values_samples) {
      expect(loaded.pixelValues[((t * 3 + c) * S + y) * S + x]).toBe(Math.fround(v));
    }
  });

  test('normalization is bit-identical to torchvision ToTensor + Normalize for every byte value', async () => {
    // A 256×1 ramp image, resized to itself (a copy), as one tile of size... use a 256×256 tile.
    const side = 256;
    const rgb = new Uint8Array(side * side * 3);
    for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) rgb.fill(x, (y * side + x) * 3, (y * side + x) * 3 + 3);
    const out = await loadNative().preprocessTiles(rgb, side, side, 1, 1, side, false);
    for (let c = 0; c < 3; c++) {
      for (let v = 0; v < 256; v++) expect(out[c * side * side + v]).toBe(Math.fround(g.normalized_bytes[c][v]));
    }
  });
});

describe("decoding equals PIL's Image.open(f).convert('RGB')", () => {
  test.each(Object.keys(g.decode))('%s', async (name) => {
    const e = g.decode[name];
    const ours = await decodeRgb(join(dir, e.file));
    const theirs = await png(e.expected);
    expect([ours.width, ours.height]).toEqual([theirs.width, theirs.height]);
    const { exact, maxDiff } = compare(ours.data, theirs.data);
    expect({ name, mode: e.pil_mode, exact, maxDiff }).toEqual({ name, mode: e.pil_mode, exact: ours.data.length, maxDiff: 0 });
  });
});

describe('resizeRgb equals PIL Image.resize (BICUBIC) at awkward sizes', () => {
  test.each(g.resize.map((r) => [`${r.from.join('x')} -> ${r.to.join('x')}`, r] as const))('%s', async (_label, r) => {
    const src = await png(r.input);
    const ours = await loadNative().resizeRgb(src.data, src.width, src.height, r.to[0], r.to[1]);
    const theirs = await png(r.expected);
    const { exact } = compare(ours, theirs.data);
    expect(exact).toBe(ours.length);
  });
});

describe('tiling', () => {
  test('candidate grid order equals CPython set iteration + stable sort for maxTiles 1..40', () => {
    for (let m = 1; m <= 40; m++) expect(candidateGrids(1, m).map((x) => [...x])).toEqual(g.target_ratios[String(m)]);
  });

  test('candidate grid order for other minTiles', () => {
    for (const [key, grids] of Object.entries(g.target_ratios_min)) {
      const [lo, hi] = key.split(',').map(Number);
      expect(candidateGrids(lo, hi).map((x) => [...x])).toEqual(grids);
    }
  });

  test("SPEC §6 orders for max 6 and 12", () => {
    const fmt = (gs: ReadonlyArray<readonly [number, number]>) => gs.map(([a, b]) => `(${a},${b})`).join('');
    expect(fmt(candidateGrids(1, 6))).toBe('(1,1)(1,2)(2,1)(3,1)(1,3)(4,1)(1,4)(2,2)(1,5)(5,1)(6,1)(2,3)(1,6)(3,2)');
    expect(fmt(candidateGrids(1, 12))).toBe(
      '(1,1)(1,2)(2,1)(3,1)(1,3)(2,2)(4,1)(1,4)(5,1)(1,5)(1,6)(6,1)(3,2)(2,3)(7,1)(1,7)(4,2)(2,4)(1,8)(8,1)(1,9)(3,3)(9,1)(2,5)(5,2)(10,1)(1,10)(11,1)(1,11)(12,1)(3,4)(4,3)(1,12)(6,2)(2,6)',
    );
  });

  test('closest-aspect choice with the reference tie-break', () => {
    for (const c of g.choices) {
      expect({ ...c, grid: [...chooseGrid(c.size[0], c.size[1], S, 1, c.max_num)] }).toEqual(c);
    }
  });

  test('SPEC §6 examples', () => {
    const tiles = (w: number, h: number, max: number) => planTiles(w, h, { minTiles: 1, maxTiles: max, useThumbnail: true, tileSize: 448 }).tiles;
    expect([tiles(1920, 1080, 6), tiles(1920, 1080, 12)]).toEqual([3, 9]);
    expect([tiles(1000, 1000, 6), tiles(1000, 1000, 12)]).toEqual([5, 10]);
    expect([tiles(640, 480, 6), tiles(640, 480, 12)]).toEqual([7, 13]);
    expect(tiles(448, 448, 12)).toBe(1);
    expect(planTiles(1920, 1080, { minTiles: 1, maxTiles: 6, useThumbnail: false, tileSize: 448 }).tiles).toBe(2);
  });
});

test('video frame indices equal the reference get_index (numpy round-half-even)', () => {
  for (const v of g.video_indices) {
    const got = frameIndices({ ...(v.bound ? { bound: v.bound } : {}), fps: v.fps, maxFrame: v.max_frame, numSegments: v.num_segments });
    expect({ ...v, indices: got }).toEqual(v);
  }
});
