/**
 * What the model commands share: loading a checkpoint and decoding a video with a
 * progress display on stderr (a bar on a TTY; plain lines elsewhere once an operation
 * takes over a second; nothing with --json), and the --verbose timing line.
 */
import { InternVL, type LoadOptions, type LoadProgress } from '../model.js';
import { type LoadedVideo, loadVideo } from '../vision/video.js';
import { type Progress, createProgress } from './progress.js';
import { downloadProgress } from './pull.js';

/** Plain progress lines only for operations slower than this. */
const QUIET_MS = 1000;

export interface CliOutput {
  /** Machine-readable output: no progress at all. */
  json?: boolean;
}

/**
 * InternVL.load with a bar per device (bytes, with tensors as the detail); returns the load
 * time too. A Hub model id (org/name[@rev]) first gets a download bar for what is missing.
 */
export async function loadModelWithProgress(
  dir: string,
  options: LoadOptions,
  out: CliOutput,
): Promise<{ model: InternVL; loadMs: number }> {
  const bars = new Map<string, Progress>();
  let last: LoadProgress | undefined;
  const download = downloadProgress(`downloading ${dir}`, { enabled: !out.json, quietMs: QUIET_MS });
  const onProgress = (p: LoadProgress) => {
    download.done();
    let bar = bars.get(p.device);
    if (!bar) {
      for (const b of bars.values()) b.done();
      bar = createProgress({ label: `loading weights (${p.device})`, total: p.bytesTotal, unit: 'bytes', enabled: !out.json, quietMs: QUIET_MS });
      bars.set(p.device, bar);
    }
    bar.update(p.bytesDone, `${p.tensorsDone}/${p.tensorsTotal} tensors`);
    last = p;
  };
  const start = performance.now();
  try {
    const model = await InternVL.load(dir, { ...options, onProgress, hub: { ...options.hub, onProgress: download.onProgress } });
    return { model, loadMs: performance.now() - start };
  } finally {
    download.done();
    // On success the last step is done == total; on failure the bar stops where it was.
    if (last) bars.get(last.device)?.done(`${last.tensorsDone} tensors`);
  }
}

/** loadVideo with a bar over the frames being decoded. */
export async function loadVideoWithProgress(
  path: string,
  options: { numSegments: number; maxTilesPerFrame: number; imageSize: number; signal?: AbortSignal },
  out: CliOutput,
): Promise<LoadedVideo> {
  let bar: Progress | undefined;
  try {
    return await loadVideo(path, {
      ...options,
      onProgress: (done, total) => {
        bar ??= createProgress({ label: 'decoding video frames', total, unit: 'items', enabled: !out.json, quietMs: QUIET_MS });
        bar.update(done);
      },
    });
  } finally {
    bar?.done();
  }
}

/** `Frame1: <image>\nFrame2: <image>\n…` before the question, as the model card does for videos. */
export function videoQuestion(frames: number, question: string): string {
  let prefix = '';
  for (let i = 1; i <= frames; i++) prefix += `Frame${i}: <image>\n`;
  return prefix + question;
}

/** The --verbose line: time per stage and token counts. */
export function timingLine(
  t: { loadMs?: number; videoMs?: number; preprocessMs: number; generateMs: number; firstTokenMs?: number },
  promptTokens: number,
  completionTokens: number,
): string {
  const parts = [
    ...(t.loadMs !== undefined ? [`load ${t.loadMs.toFixed(0)} ms`] : []),
    ...(t.videoMs !== undefined ? [`video ${t.videoMs.toFixed(0)} ms`] : []),
    `preprocess ${t.preprocessMs.toFixed(0)} ms`,
    `generate ${t.generateMs.toFixed(0)} ms`,
    ...(t.firstTokenMs !== undefined ? [`first token ${t.firstTokenMs.toFixed(0)} ms into it`] : []),
  ];
  return `${parts.join(', ')}, ${promptTokens} prompt + ${completionTokens} generated tokens\n`;
}
