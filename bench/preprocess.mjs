#!/usr/bin/env node
// Preprocessing speed: a 4000×3000 JPEG into 13 tiles (maxTiles 12, the card's
// load_image), end to end through loadImage, with the stages timed apart:
//   header   sharp metadata (sizes the tiles)
//   decode   sharp JPEG → RGB (what loadImage runs while the output memory is obtained)
//   tiles    native resize + crops + thumbnail + normalize, into memory already touched
//   tilesCold  the same into fresh memory (first-touch page faults included)
// Two inputs: "photo" (smooth content, moderate detail and noise, ~2.5 MB as a 12 MP
// phone photo) and "noisy" (strong per-pixel noise, 5.6 MB: the slowest to decode).
// Median and min over repetitions; the event loop's longest delay while the work runs
// shows that it stays off the JS thread.
//   npm run build:ts && node bench/preprocess.mjs [--reps N]
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { loadNative } from '../dist/native.js';
import { checkDecodeOptions, decodeRgb, readHeader } from '../dist/vision/decode.js';
import { loadImage } from '../dist/vision/image.js';
import { planTiles } from '../dist/vision/tiling.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const reps = Number(process.argv[process.argv.indexOf('--reps') + 1]) || 15;
const W = 4000;
const H = 3000;

function lcg(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return (s >>> 24) - 128; // -128..127
  };
}

function noisyImage() {
  const raw = Buffer.alloc(W * H * 3);
  const rnd = lcg(12345);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const n = rnd();
      const i = (y * W + x) * 3;
      raw[i] = Math.max(0, Math.min(255, (x * 255) / W + n / 4));
      raw[i + 1] = Math.max(0, Math.min(255, (y * 255) / H + n / 4));
      raw[i + 2] = Math.max(0, Math.min(255, 128 + 100 * Math.sin(x / 50 + y / 70) + n / 4));
    }
  }
  return raw;
}

function photoImage() {
  // Sky-like gradient, soft blobs, a textured "ground" band, hard-edged shapes and
  // mild sensor noise.
  const raw = Buffer.alloc(W * H * 3);
  const rnd = lcg(777);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = (y * W + x) * 3;
      let r = 90 + (60 * y) / H;
      let g = 140 + (50 * y) / H;
      let b = 220 - (80 * y) / H;
      const blob = Math.exp(-(((x - 1400) ** 2 + (y - 900) ** 2) / 2e5));
      r += 120 * blob;
      g += 80 * blob;
      if (y > 1900) {
        const t = 20 * Math.sin(x / 9 + Math.sin(y / 13) * 3) * Math.sin(y / 7);
        r = 70 + t + (30 * (y - 1900)) / 1100;
        g = 110 + t;
        b = 50 + t / 2;
      }
      if (x > 2600 && x < 3300 && y > 700 && y < 2300) {
        r = 180 + 40 * (((x >> 6) + (y >> 6)) & 1);
        g = 170;
        b = 150;
      }
      const n = rnd() / 24;
      raw[i] = Math.max(0, Math.min(255, r + n));
      raw[i + 1] = Math.max(0, Math.min(255, g + n));
      raw[i + 2] = Math.max(0, Math.min(255, b + n));
    }
  }
  return raw;
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const r = (v) => Math.round(v * 10) / 10;
  return { medianMs: r(s[Math.floor(s.length / 2)]), minMs: r(s[0]), maxMs: r(s[s.length - 1]) };
};

async function time(fn) {
  await fn(); // warm-up
  const out = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return stats(out);
}

const native = loadNative();
const loadBefore = loadavg()[0];
const results = {};
for (const [label, make] of [
  ['photo', photoImage],
  ['noisy', noisyImage],
]) {
  const jpeg = await sharp(make(), { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
  const o = checkDecodeOptions({});
  const header = await readHeader(jpeg, 'bench', o);
  const rgb = await decodeRgb(jpeg);
  const plan = planTiles(rgb.width, rgb.height, { minTiles: 1, maxTiles: 12, useThumbnail: true, tileSize: 448 });
  const n = plan.tiles * 3 * 448 * 448;
  const warmOut = await native.allocFloat32(n);
  const tiles = (out) => native.preprocessTiles(rgb.data, rgb.width, rgb.height, plan.grid[0], plan.grid[1], 448, plan.thumbnail, out);

  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const total = await time(() => loadImage(jpeg, { maxTiles: 12 }));
  loop.disable();
  results[label] = {
    jpegBytes: jpeg.length,
    tileCount: plan.tiles,
    grid: plan.grid,
    total,
    header: await time(() => readHeader(jpeg, 'bench', o)),
    decode: await time(() => decodeRgb(jpeg, {}, { bytes: jpeg, header })),
    tilesWarm: await time(() => tiles(warmOut)),
    tilesCold: await time(() => tiles(undefined)),
    // sharp decodes with 1 libvips thread by default on glibc; an application may raise it.
    decodeSharpConcurrency2: await (async () => {
      const before = sharp.concurrency();
      sharp.concurrency(2);
      try {
        return await time(() => decodeRgb(jpeg, {}, { bytes: jpeg, header }));
      } finally {
        sharp.concurrency(before);
      }
    })(),
    eventLoopDelayDuringTotal: { maxMs: Math.round(loop.max / 1e4) / 100, p99Ms: Math.round(loop.percentile(99) / 1e4) / 100 },
  };
}

const result = {
  date: new Date().toISOString().slice(0, 10),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, sharp: sharp.versions.sharp, vips: sharp.versions.vips },
  input: { width: W, height: H, maxTiles: 12, tileSize: 448 },
  reps,
  // 1-minute load average before and after: other work on the machine skews the figures
  loadAverage: { before: Math.round(loadBefore * 100) / 100, after: Math.round(loadavg()[0] * 100) / 100 },
  targetMs: 150,
  results,
};
console.log(JSON.stringify(result, null, 2));
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', `preprocess-${result.date}-cpu.json`), `${JSON.stringify(result, null, 2)}\n`);
