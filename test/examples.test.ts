/**
 * Every example runs on the bundled tiny checkpoint (CPU), so none can rot. Where an
 * example reproduces a golden case, its output is checked against PyTorch's.
 */
import * as abortTimeout from '../examples/abort_timeout.js';
import * as batch from '../examples/batch.js';
import * as httpStream from '../examples/http_stream.js';
import * as pureText from '../examples/pure_text_multi_round.js';
import * as singleImage from '../examples/single_image.js';
import * as singleImageMulti from '../examples/single_image_multi_round.js';
import * as streaming from '../examples/streaming.js';
import * as twoImages from '../examples/two_images.js';
import * as video from '../examples/video_multi_round.js';
import { ffmpegBinary, ffprobeBinary } from '../lib/vision/video.js';
import { spawnSync } from 'node:child_process';
import { type GoldenCase, readModelGolden } from './helpers/goldens.js';

const golden = readModelGolden('tiny-internlm2');
const imageCase = golden.cases.find((c) => c.name === 'image') as GoldenCase;
const argv = ['--backend', 'cpu'];

async function run<T>(main: (argv: string[], log: (l: string) => void) => Promise<T>, extra: string[] = []) {
  const lines: string[] = [];
  const result = await main([...argv, ...extra], (l) => lines.push(l));
  expect(lines.length).toBeGreaterThan(0);
  return { result, lines };
}

test('single_image reproduces the golden image case', async () => {
  const { result } = await run(singleImage.main);
  expect(result.tokenIds).toEqual(imageCase.generated_ids);
});

test('streaming concatenates to the golden response', async () => {
  const { result } = await run(streaming.main);
  expect(result.chunks.join('')).toBe(imageCase.response);
});

test('pure_text_multi_round carries history', async () => {
  const { result } = await run(pureText.main);
  expect(result.history).toHaveLength(2);
});

test('single_image_multi_round: second turn sees the first', async () => {
  const { result } = await run(singleImageMulti.main);
  expect(result.history).toHaveLength(2);
  expect(result.history[0].question.startsWith('<image>\n')).toBe(true);
});

test('two_images: combined is one placeholder, separate is one per image', async () => {
  const { result } = await run(twoImages.main);
  expect(result.combined.imageTiles).toEqual([golden.images.wide.tiles + golden.images.tall.tiles]);
  expect(result.separate.imageTiles).toEqual([golden.images.wide.tiles, golden.images.tall.tiles]);
});

test('batch answers every question', async () => {
  const { result } = await run(batch.main);
  expect(result.responses).toHaveLength(2);
});

test('abort_timeout stops a long generation and keeps the partial text', async () => {
  const { result } = await run(abortTimeout.main);
  expect(result.finishReason).toBe('aborted');
  expect(result.usage.completionTokens).toBeGreaterThan(0);
});

test('http_stream serves a streamed reply over node:http', async () => {
  const { result } = await run(httpStream.main);
  expect(typeof result).toBe('string');
});

// The video path needs ffmpeg + ffprobe (optional dependencies); the frames path does not.
// Both always run: without the binaries the video path must fail with the clear error.
const ffmpegWorks = [ffmpegBinary(), ffprobeBinary()].every((bin) => spawnSync(bin, ['-version'], { stdio: 'ignore' }).status === 0);

test('video_multi_round from pre-extracted frames: 8 one-tile frames, Frame1..8 labels, two rounds', async () => {
  const { result, lines } = await run(video.main, ['--frames', video.media.frames]);
  expect(lines[0]).toMatch(/^8 frames from /);
  expect(result.numPatchesList).toEqual(Array(8).fill(1));
  expect(result.first.imageTiles).toEqual(Array(8).fill(1));
  expect(result.second.history).toHaveLength(2);
  expect(result.second.history[0].question).toBe(`${Array.from({ length: 8 }, (_, i) => `Frame${i + 1}: <image>\n`).join('')}What is the red ball doing?`);
  expect(result.second.usage.promptTokens).toBeGreaterThan(result.first.usage.promptTokens);
});

test(`video_multi_round from the video (ffmpeg ${ffmpegWorks ? 'present' : 'absent'}): same pixels and tokens as the frames, or a clear ERR_IMAGE`, async () => {
  if (!ffmpegWorks) {
    await expect(run(video.main)).rejects.toMatchObject({ code: 'ERR_IMAGE', message: expect.stringMatching(/ff(mpeg|probe) not found/) });
    return;
  }
  const fromVideo = await run(video.main);
  expect(fromVideo.lines[0]).toMatch(/clip\.mp4: 30 frames at 10 fps, sampled 1, 5, 8, 12, 15, 19, 23, 26$/);
  const fromFrames = await run(video.main, ['--frames', video.media.frames]);
  expect(Buffer.compare(Buffer.from(fromVideo.result.pixelValues.buffer), Buffer.from(fromFrames.result.pixelValues.buffer))).toBe(0);
  expect(fromVideo.result.first.tokenIds).toEqual(fromFrames.result.first.tokenIds);
  expect(fromVideo.result.second.tokenIds).toEqual(fromFrames.result.second.tokenIds);
});
