// Model card: video, several rounds. load_video samples 8 frames (one per segment), one
// tile each; the question starts `Frame1: <image>\nFrame2: <image>\n…`, and every turn
// passes the frames again with numPatchesList (as the reference does).
//
//   --video PATH   a video (decoded with ffmpeg: the optional dependency or one on PATH)
//   --frames DIR   already-extracted frame images instead (sorted by name; no ffmpeg needed)
// Default: examples/media/clip.mp4 (3 s, 128×96). examples/media/frames/ holds the 8 frames
// loadVideo samples from it, so `--frames examples/media/frames` gives the same pixels.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { InternVL, loadImages, loadVideo } from '../lib/index.js';
import { type Log, parseArgs, root, runIfMain } from './_shared.js';

export const media = {
  video: join(root, 'examples', 'media', 'clip.mp4'),
  frames: join(root, 'examples', 'media', 'frames'),
};

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function main(argv: string[], log: Log) {
  const { model: dir, backend } = parseArgs(argv);
  await using model = await InternVL.load(dir, { backend });
  const imageSize = model.info.imageSize; // 448 for InternVL2; the tiny checkpoint uses 112
  const framesDir = flag(argv, '--frames');
  let pixelValues: Float32Array;
  let numPatchesList: number[];
  if (framesDir !== undefined) {
    const files = readdirSync(framesDir).filter((f) => /\.(png|jpe?g|webp)$/i.test(f)).sort().map((f) => join(framesDir, f));
    ({ pixelValues, numPatchesList } = await loadImages(files, { imageSize, maxTiles: 1 }));
    log(`${files.length} frames from ${framesDir}`);
  } else {
    const path = flag(argv, '--video') ?? media.video;
    const video = await loadVideo(path, { numSegments: 8, maxTilesPerFrame: 1, imageSize });
    ({ pixelValues, numPatchesList } = video);
    log(`${path}: ${video.frameCount} frames at ${video.fps} fps, sampled ${video.frameIndices.join(', ')}`);
  }
  const videoPrefix = numPatchesList.map((_, i) => `Frame${i + 1}: <image>\n`).join('');
  const generation = { maxNewTokens: 24 };

  const q1 = `${videoPrefix}What is the red ball doing?`;
  const first = await model.chat({ question: q1, pixelValues, numPatchesList, generation });
  log(`User: ${q1}\nAssistant: ${first.response}`);

  const q2 = "Describe this video in detail. Don't repeat.";
  const second = await model.chat({ question: q2, pixelValues, numPatchesList, history: first.history, generation });
  log(`User: ${q2}\nAssistant: ${second.response}`);
  return { first, second, numPatchesList, pixelValues };
}

runIfMain(import.meta.url, main);
