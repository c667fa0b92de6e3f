#!/usr/bin/env node
// Preprocessing speed: a 4000×3000 JPEG into 13 tiles (maxTiles 12), decode and
// tile stages timed apart, median and min over repetitions; the event loop's
// longest stall while it runs shows that the work stays off the JS thread.
//   node bench/preprocess.mjs [--reps N]      (after npm install; uses dist/)
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { loadNative } from '../dist/native.js';
import { decodeRgb } from '../dist/vision/decode.js';
import { loadImage } from '../dist/vision/image.js';
import { planTiles } from '../dist/vision/tiling.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const reps = Number(process.argv[process.argv.indexOf('--reps') + 1]) || 15;

// A photo-like test image: gradients plus noise (so JPEG has real entropy to decode).
const W = 4000, H = 3000;
const raw = Buffer.alloc(W * H * 3);
let seed = 12345;
for (let y = 0; y < H; y++) {
  for (let x = 0; x < W; x++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const n = (seed >>> 24) - 128;
    const i = (y * W + x) * 3;
    raw[i] = Math.max(0, Math.min(255, (x * 255) / W + n / 4));
    raw[i + 1] = Math.max(0, Math.min(255, (y * 255) / H + n / 4));
    raw[i + 2] = Math.max(0, Math.min(255, 128 + 100 * Math.sin(x / 50 + y / 70) + n / 4));
  }
}
const jpeg = await sharp(raw, { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { medianMs: s[Math.floor(s.length / 2)], minMs: s[0], maxMs: s[s.length - 1] };
};
async function time(fn) {
  const out = [];
  await fn(); // warm-up
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return stats(out);
}

let maxStall = 0;
let last = performance.now();
const timer = setInterval(() => {
  const now = performance.now();
  maxStall = Math.max(maxStall, now - last - 1);
  last = now;
}, 1);

const total = await time(() => loadImage(jpeg, { maxTiles: 12 }));
const decode = await time(() => decodeRgb(jpeg));
const rgb = await decodeRgb(jpeg);
const plan = planTiles(rgb.width, rgb.height, { minTiles: 1, maxTiles: 12, useThumbnail: true, tileSize: 448 });
const tiles = await time(() => loadNative().preprocessTiles(rgb.data, rgb.width, rgb.height, plan.grid[0], plan.grid[1], 448, plan.thumbnail));
clearInterval(timer);

const result = {
  date: new Date().toISOString().slice(0, 10),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
  input: { width: W, height: H, jpegBytes: jpeg.length, tiles: plan.tiles, grid: plan.grid },
  reps,
  total,
  decode,
  resizeCropNormalize: tiles,
  eventLoopMaxStallMs: maxStall,
  targetMs: 150,
};
console.log(JSON.stringify(result, null, 2));
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', `preprocess-${result.date}-cpu.json`), `${JSON.stringify(result, null, 2)}\n`);
