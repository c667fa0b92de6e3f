#!/usr/bin/env node
// Makes the example video and its pre-extracted frames (run from the repo root after
// `npm run build:ts`): clip.mp4 is 3 s of a red ball rolling across a gradient (128×96,
// 10 fps, H.264), frames/ holds the 8 frames the card's load_video samples from it
// (num_segments=8), decoded by loadVideo's own ffmpeg path and saved as lossless PNG,
// so that the example's ffmpeg-free input gives the very same pixels.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { decodeFrames, ffmpegBinary, frameIndices, probeVideo } from '../../dist/vision/video.js';

const here = dirname(fileURLToPath(import.meta.url));
const W = 128, H = 96, FRAMES = 30, FPS = 10;
const raw = Buffer.alloc(FRAMES * W * H * 3);
for (let k = 0; k < FRAMES; k++) {
  const cx = 12 + (k * (W - 24)) / (FRAMES - 1), cy = 60 - 20 * Math.sin((Math.PI * k) / (FRAMES - 1));
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const o = ((k * H + y) * W + x) * 3;
      const inBall = (x - cx) ** 2 + (y - cy) ** 2 < 100;
      raw[o] = inBall ? 220 : 40 + x;
      raw[o + 1] = inBall ? 40 : 90 + y;
      raw[o + 2] = inBall ? 30 : 200 - y;
    }
  }
}
const clip = join(here, 'clip.mp4');
execFileSync(ffmpegBinary(), ['-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${W}x${H}`, '-r', String(FPS), '-i', 'pipe:0',
  '-c:v', 'libx264', '-crf', '20', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', clip], { input: raw });

const info = await probeVideo(clip);
const indices = frameIndices({ fps: info.fps, maxFrame: info.frameCount - 1, numSegments: 8 });
const out = join(here, 'frames');
rmSync(out, { recursive: true, force: true });
mkdirSync(out);
await decodeFrames(clip, info, indices, async (n, rgb) => {
  await sharp(rgb, { raw: { width: info.width, height: info.height, channels: 3 } }).png({ compressionLevel: 9 }).toFile(join(out, `frame-${String(n).padStart(3, '0')}.png`));
});
console.log(`${clip}: ${info.frameCount} frames at ${info.fps} fps; frames ${indices.join(', ')} -> ${out}`);
