/**
 * loadVideo on tiny videos made here with the packaged ffmpeg: every frame is a solid
 * colour that encodes its number, so the decoded frames show which frames were taken.
 * Indices follow the reference get_index (checked against numpy in goldens.test.ts);
 * frame k is the k-th frame in presentation order (the H.264 file has B-frames, so
 * decode order differs), as decord's VideoReader[k].
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InternVLError } from '../../lib/errors.js';
import { decodeFrames, ffmpegBinary, frameIndices, loadVideo, probeVideo } from '../../lib/vision/video.js';

const FRAMES = 40;
const W = 64;
const H = 48;
/** Frame k's colour: far apart for every k, so that codec error cannot confuse two frames. */
const colour = (k: number): [number, number, number] => [k * 6, 255 - k * 6, (k * 37) % 256];

function nearestFrame(r: number, g: number, b: number): number {
  let best = -1;
  let bestD = Infinity;
  for (let k = 0; k < FRAMES; k++) {
    const [cr, cg, cb] = colour(k);
    const d = (r - cr) ** 2 + (g - cg) ** 2 + (b - cb) ** 2;
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

const ffmpegWorks = spawnSync(ffmpegBinary(), ['-version'], { stdio: 'ignore' }).status === 0;
const suite = ffmpegWorks ? describe : describe.skip;
let dir: string;

function encode(file: string, codecArgs: string[], fps = 10): string {
  const raw = Buffer.alloc(FRAMES * W * H * 3);
  for (let k = 0; k < FRAMES; k++) {
    const c = colour(k);
    for (let p = 0; p < W * H; p++) raw.set(c, (k * W * H + p) * 3);
  }
  const path = join(dir, file);
  execFileSync(
    ffmpegBinary(),
    ['-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${W}x${H}`, '-r', String(fps), '-i', 'pipe:0', ...codecArgs, path],
    { input: raw },
  );
  return path;
}

suite('loadVideo', () => {
  let mp4: string;
  let webm: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'internvl-video-'));
    mp4 = encode('frames.mp4', ['-c:v', 'libx264', '-crf', '10', '-bf', '3', '-pix_fmt', 'yuv420p']);
    webm = encode('frames.webm', ['-c:v', 'libvpx-vp9', '-crf', '10', '-b:v', '0', '-pix_fmt', 'yuv420p'], 25);
    writeFileSync(join(dir, 'notes.txt'), 'not a video\n');
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('probe: frame count and average fps as decord reports them', async () => {
    expect(await probeVideo(mp4)).toEqual({ frameCount: FRAMES, fps: 10, width: W, height: H });
    expect(await probeVideo(webm)).toEqual({ frameCount: FRAMES, fps: 25, width: W, height: H });
  });

  test.each([
    ['H.264 with B-frames', () => mp4],
    ['VP9 in WebM', () => webm],
  ])('decodeFrames returns exactly the frames asked for (%s)', async (_what, file) => {
    const path = file();
    const info = await probeVideo(path);
    const asked = [0, 1, 5, 5, 17, 38, 39];
    const got: Array<[number, number]> = [];
    await decodeFrames(path, info, asked, async (n, rgb) => {
      expect(rgb.length).toBe(W * H * 3);
      const mid = ((H >> 1) * W + (W >> 1)) * 3;
      got.push([n, nearestFrame(rgb[mid], rgb[mid + 1], rgb[mid + 2])]);
      const want = colour(n);
      for (let c = 0; c < 3; c++) expect(Math.abs(rgb[mid + c] - want[c])).toBeLessThanOrEqual(4);
    });
    expect(got).toEqual([0, 1, 5, 17, 38, 39].map((n) => [n, n]));
  });

  test("the card's defaults: 8 segments, one 448² tile per frame, in frame order", async () => {
    const v = await loadVideo(mp4);
    expect(v.frameIndices).toEqual(frameIndices({ fps: 10, maxFrame: FRAMES - 1, numSegments: 8 }));
    expect(v.frameIndices).toEqual([2, 7, 12, 17, 22, 26, 31, 36]);
    expect(v.numPatchesList).toEqual(Array(8).fill(1));
    expect([v.tiles, v.frameCount, v.fps, v.width, v.height]).toEqual([8, FRAMES, 10, W, H]);
    const S = 448;
    expect(v.pixelValues.length).toBe(8 * 3 * S * S);
    // Each tile is the normalized colour of its frame: undo the normalization at the centre.
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const seen = v.frameIndices.map((_, t) => {
      const px = [0, 1, 2].map((c) => Math.round((v.pixelValues[(t * 3 + c) * S * S + (S / 2) * S + S / 2] * std[c] + mean[c]) * 255));
      return nearestFrame(px[0], px[1], px[2]);
    });
    expect(seen).toEqual(v.frameIndices);
  });

  test('bounds, many segments (repeated frames) and more tiles per frame', async () => {
    const v = await loadVideo(mp4, { numSegments: 32, bound: [0.5, 2.5] });
    expect(v.frameIndices).toEqual(frameIndices({ bound: [0.5, 2.5], fps: 10, maxFrame: FRAMES - 1, numSegments: 32 }));
    expect(new Set(v.frameIndices).size).toBeLessThan(32); // repeats are decoded once and copied
    expect(v.tiles).toBe(32);
    const S = 448;
    for (let t = 1; t < 32; t++) {
      if (v.frameIndices[t] !== v.frameIndices[t - 1]) continue;
      const a = v.pixelValues.subarray(t * 3 * S * S, (t + 1) * 3 * S * S);
      const b = v.pixelValues.subarray((t - 1) * 3 * S * S, t * 3 * S * S);
      expect(Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(0);
    }
    // Up to 6 tiles per frame: 4:3 is closest to 3×2, plus the thumbnail.
    const w = await loadVideo(mp4, { numSegments: 2, maxTilesPerFrame: 6, imageSize: 224 });
    expect([w.numPatchesList, w.tiles, w.pixelValues.length]).toEqual([[7, 7], 14, 14 * 3 * 224 * 224]);
  });

  test.each([
    ['a missing file', 'ERR_IMAGE', () => join(dir, 'missing.mp4'), {}, /^Cannot read video \(.*missing\.mp4\): file not found$/],
    ['a text file', 'ERR_IMAGE', () => join(dir, 'notes.txt'), {}, /^Cannot read video \(.*notes\.txt\): Invalid data found when processing input$/],
    ['numSegments 0', 'ERR_INVALID_ARG', () => mp4, { numSegments: 0 }, /^Expected integer between 1 and 4096 for numSegments but received 0 of type number$/],
    ['a reversed bound', 'ERR_INVALID_ARG', () => mp4, { bound: [3, 1] }, /^Expected \[start, end\] seconds with start <= end for bound/],
    ['maxTilesPerFrame 0', 'ERR_INVALID_ARG', () => mp4, { maxTilesPerFrame: 0 }, /^Expected integer between 1 and 40 for maxTilesPerFrame but received 0 of type number$/],
    ['a missing ffprobe', 'ERR_IMAGE', () => mp4, { ffprobePath: '/nonexistent/ffprobe' }, /ffprobe not found \(\/nonexistent\/ffprobe\)/],
  ])('%s → %s', async (_what, code, path, options, message) => {
    const err = await loadVideo(path(), options as object).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InternVLError);
    expect(err).toMatchObject({ code, message: expect.stringMatching(message) });
  });
});
