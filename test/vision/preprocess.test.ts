/**
 * Live check against the Pillow installed on this machine (Debian's python3-pil,
 * which .ci/run installs): larger, noisier images than the committed goldens
 * (test/vision/goldens.test.ts), generated and cut by test/vision/pil_reference.py,
 * compared value for value. Skipped when no python3 with PIL and numpy is found.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../../lib/native.js';
import { decodeRgb } from '../../lib/vision/decode.js';
import { candidateGrids, planTiles } from '../../lib/vision/tiling.js';

interface Reference {
  pil_version: string;
  tile_size: number;
  images: Record<string, { file: string; max_num: number; grid: [number, number]; tiles: number; decoded_size: [number, number]; auto_orient: boolean }>;
  target_ratios: Record<string, Array<[number, number]>>;
  target_ratios_min: Record<string, Array<[number, number]>>;
  video_indices: Array<{ bound: [number, number] | null; fps: number; max_frame: number; num_segments: number; indices: number[] }>;
}

const here = dirname(fileURLToPath(import.meta.url));
const python = process.env.INTERNVL_PYTHON ?? '/usr/bin/python3';
let out: string;
let ref: Reference;

function havePil(): boolean {
  try {
    execFileSync(python, ['-c', 'import PIL, numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const live = havePil() ? describe : describe.skip;

live('live Pillow', () => {
  beforeAll(() => {
    out = mkdtempSync(join(tmpdir(), 'internvl-pil-'));
    execFileSync(python, [join(here, 'pil_reference.py'), out], { stdio: 'pipe' });
    ref = JSON.parse(readFileSync(join(out, 'reference.json'), 'utf8')) as Reference;
  });

  afterAll(() => rmSync(out, { recursive: true, force: true }));

  const names = ['landscape', 'portrait', 'square', 'tiny', 'very_wide', 'alpha', 'exif_rotated', 'webp'];

  test.each(names)('%s: same grid and tiles as PIL, value for value', async (name) => {
    const r = ref.images[name];
    const rgb = await decodeRgb(join(out, r.file), { autoOrient: r.auto_orient });
    expect([rgb.width, rgb.height]).toEqual(r.decoded_size);
    const plan = planTiles(rgb.width, rgb.height, { minTiles: 1, maxTiles: r.max_num, useThumbnail: true, tileSize: ref.tile_size });
    expect([...plan.grid]).toEqual(r.grid);
    expect(plan.tiles).toBe(r.tiles);
    const ours = await loadNative().tilesU8(rgb.data, rgb.width, rgb.height, plan.grid[0], plan.grid[1], ref.tile_size, plan.thumbnail);
    const theirs = readFileSync(join(out, `${name}.tiles.u8`));
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
    // eslint-disable-next-line no-console
    console.log(`${name} (PIL ${ref.pil_version}): ${exact}/${ours.length} values exact, max diff ${maxDiff}`);
    expect(within1 / ours.length).toBeGreaterThanOrEqual(0.999);
    expect(exact).toBe(ours.length); // the resampler is meant to be bit-exact; any drift is a bug
  });

  test('normalization equals torchvision ToTensor + Normalize in float32', async () => {
    const r = ref.images.square;
    const rgb = await decodeRgb(join(out, r.file));
    const S = ref.tile_size;
    const [u8, f32] = await Promise.all([
      loadNative().tilesU8(rgb.data, rgb.width, rgb.height, 2, 2, S, true),
      loadNative().preprocessTiles(rgb.data, rgb.width, rgb.height, 2, 2, S, true),
    ]);
    const mean = [0.485, 0.456, 0.406].map(Math.fround);
    const std = [0.229, 0.224, 0.225].map(Math.fround);
    const plane = S * S;
    for (let t = 0; t < 5; t++) {
      for (let p = 0; p < plane; p += 97) {
        for (let c = 0; c < 3; c++) {
          const v = Math.fround(Math.fround(Math.fround(u8[(t * plane + p) * 3 + c] / 255) - mean[c]) / std[c]);
          expect(f32[t * 3 * plane + c * plane + p]).toBe(v);
        }
      }
    }
  });

  test('candidate grid order equals CPython for maxTiles 1..40 (and other minTiles)', () => {
    for (let m = 1; m <= 40; m++) expect(candidateGrids(1, m).map((g) => [...g])).toEqual(ref.target_ratios[String(m)]);
    for (const [key, grids] of Object.entries(ref.target_ratios_min)) {
      const [lo, hi] = key.split(',').map(Number);
      expect(candidateGrids(lo, hi).map((g) => [...g])).toEqual(grids);
    }
  });
});
