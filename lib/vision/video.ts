/**
 * Video input as the model card's `load_video`: frame indices by its `get_index`
 * (segment midpoints, numpy's round-half-even), each frame as its own image of
 * `maxTilesPerFrame` tiles (1 by default: one 448² tile per frame).
 *
 * The reference decodes with decord, whose frame k is the k-th packet of the video
 * stream in presentation (pts) order, its length the packet count and its fps the
 * stream's avg_frame_rate. Here ffprobe gives those two numbers (`-count_packets`,
 * `avg_frame_rate`) and ffmpeg decodes the selected frames by number in presentation
 * order (`select=eq(n\,k)+…`, `-vsync 0` so that no frame is duplicated or dropped),
 * stopping after the last one. Both apply the stream's rotation, as decord does. The
 * RGB conversion is libswscale's, as decord's; versions may differ by a level or two.
 *
 * The binaries come from the optional dependencies @ffmpeg-installer/ffmpeg and
 * @ffprobe-installer/ffprobe (prebuilt, shipped inside the npm packages), else
 * `ffmpeg`/`ffprobe` on PATH; `ffmpegPath`/`ffprobePath` or INTERNVL_FFMPEG /
 * INTERNVL_FFPROBE override.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { InternVLError, fromNative, invalidArg } from '../errors.js';
import { loadNative } from '../native.js';
import { DEFAULT_MAX_PIXELS } from './decode.js';
import { withCallerStack } from './image.js';
import { checkTilingOptions, planTiles } from './tiling.js';

/** Python's round() / numpy.round() on a double: ties to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface FrameSampling {
  /** [start, end] in seconds; the whole video when omitted. */
  bound?: readonly [number, number];
  fps: number;
  /** Index of the last frame (frames - 1). */
  maxFrame: number;
  firstIndex?: number;
  numSegments?: number;
}

/** The card's `get_index(bound, fps, max_frame, first_idx=0, num_segments=32)`. */
export function frameIndices(o: FrameSampling): number[] {
  const numSegments = o.numSegments ?? 32;
  if (!Number.isInteger(numSegments) || numSegments < 1) throw invalidArg('numSegments', 'positive integer', numSegments);
  if (!(o.fps > 0)) throw invalidArg('fps', 'positive number', o.fps);
  if (!Number.isInteger(o.maxFrame) || o.maxFrame < 0) throw invalidArg('maxFrame', 'non-negative integer', o.maxFrame);
  const [start, end] = o.bound ?? [-100000, 100000];
  const startIdx = Math.max(o.firstIndex ?? 0, roundHalfEven(start * o.fps));
  const endIdx = Math.min(roundHalfEven(end * o.fps), o.maxFrame);
  const seg = (endIdx - startIdx) / numSegments;
  return Array.from({ length: numSegments }, (_, k) => Math.trunc(startIdx + seg / 2 + roundHalfEven(seg * k)));
}

/** Options of {@link loadVideo}: frame count, tiles per frame, time bounds. */
export interface LoadVideoOptions {
  /** Frames sampled, one per segment (the card's `num_segments`, 8). */
  numSegments?: number;
  /** [start, end] in seconds (the card's `bound`). */
  bound?: readonly [number, number];
  /** Tiles per frame before the thumbnail (the card's `max_num`, 1). */
  maxTilesPerFrame?: number;
  /** Tile size (force_image_size, 448). */
  imageSize?: number;
  /** Thumbnail when a frame has more than one tile (the card passes True). */
  useThumbnail?: boolean;
  /** ffmpeg binary (default: the optional dependency, INTERNVL_FFMPEG, else `ffmpeg` on PATH). */
  ffmpegPath?: string;
  /** ffprobe binary (default: the optional dependency, INTERNVL_FFPROBE, else `ffprobe` on PATH). */
  ffprobePath?: string;
  signal?: AbortSignal;
  /** Called with (0, total) once the frames are chosen, then after each distinct frame is decoded and tiled. */
  onProgress?: (framesDone: number, framesTotal: number) => void;
}

/** Frames sampled and tiled as the model card's `load_video` does. */
export interface LoadedVideo {
  /** [sum of tiles, 3, S, S] normalized, frames in order. */
  pixelValues: Float32Array;
  /** Tiles per sampled frame (the reference's num_patches_list). */
  numPatchesList: number[];
  /** The sampled frame numbers (0-based, presentation order). */
  frameIndices: number[];
  tiles: number;
  /** Frames in the video (decord's len(vr)) and its average frame rate (get_avg_fps()). */
  frameCount: number;
  fps: number;
  /** Frame size after rotation. */
  width: number;
  height: number;
}

export interface VideoInfo {
  frameCount: number;
  fps: number;
  width: number;
  height: number;
}

const require_ = createRequire(import.meta.url);

function packagedBinary(pkg: string): string | undefined {
  try {
    return (require_(pkg) as { path?: string }).path;
  } catch {
    return undefined; // not installed, or no binary for this platform
  }
}

export function ffmpegBinary(override?: string): string {
  return override ?? process.env.INTERNVL_FFMPEG ?? packagedBinary('@ffmpeg-installer/ffmpeg') ?? 'ffmpeg';
}

export function ffprobeBinary(override?: string): string {
  return override ?? process.env.INTERNVL_FFPROBE ?? packagedBinary('@ffprobe-installer/ffprobe') ?? 'ffprobe';
}

function videoError(path: string, reason: string, cause?: unknown): InternVLError {
  return new InternVLError('ERR_IMAGE', `Cannot read video (${path}): ${reason}`, cause === undefined ? undefined : { cause });
}

interface RunResult {
  stdout: Buffer;
  stderr: string;
  code: number | null;
}

/** Runs a tool; onData (if given) receives stdout as it arrives instead of collecting it. */
function run(bin: string, args: string[], name: string, what: string, signal?: AbortSignal, onData?: (chunk: Buffer) => void): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], signal });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => (onData ? onData(c) : out.push(c)));
    child.stderr.on('data', (c: Buffer) => {
      if (err.length < 8192) err += c.toString();
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.name === 'AbortError') reject(signal?.reason ?? e);
      else if (e.code === 'ENOENT') {
        reject(videoError(name, `${what} not found (${bin}); install the optional dependency or set ${what === 'ffmpeg' ? 'ffmpegPath / INTERNVL_FFMPEG' : 'ffprobePath / INTERNVL_FFPROBE'}`, e));
      } else reject(videoError(name, `${what} failed to start: ${e.message}`, e));
    });
    child.on('close', (code) => resolve({ stdout: Buffer.concat(out), stderr: err.trim(), code }));
  });
}

function parseRate(r: unknown): number {
  if (typeof r !== 'string') return NaN;
  const [n, d] = r.split('/').map(Number);
  return d ? n / d : n;
}

/** Frame count (packets of the first video stream), average fps and rotated size, as decord sees them. */
export async function probeVideo(path: string, options: Pick<LoadVideoOptions, 'ffprobePath' | 'signal'> = {}): Promise<VideoInfo> {
  const { stdout, stderr, code } = await run(
    ffprobeBinary(options.ffprobePath),
    ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries',
      'stream=width,height,avg_frame_rate,r_frame_rate,nb_read_packets:stream_tags=rotate:stream_side_data=rotation', '-of', 'json', path],
    path,
    'ffprobe',
    options.signal,
  );
  if (code !== 0) {
    const last = (stderr.split('\n').pop() ?? '').replace(`${path}: `, '');
    const reason = /No such file/i.test(stderr) ? 'file not found' : last || `ffprobe exited with ${code}`;
    throw videoError(path, reason);
  }
  const stream = (JSON.parse(stdout.toString()) as { streams?: Array<Record<string, unknown>> }).streams?.[0];
  if (!stream) throw videoError(path, 'no video stream');
  const frameCount = Number(stream.nb_read_packets);
  let fps = parseRate(stream.avg_frame_rate);
  if (!(fps > 0)) fps = parseRate(stream.r_frame_rate);
  let width = Number(stream.width);
  let height = Number(stream.height);
  if (!(frameCount > 0)) throw videoError(path, 'the video stream has no frames');
  if (!(fps > 0)) throw videoError(path, 'the video stream has no frame rate');
  if (!(width > 0 && height > 0)) throw videoError(path, 'the video stream has no frame size');
  const sideData = (stream.side_data_list as Array<{ rotation?: number }> | undefined) ?? [];
  const rotation = Number(sideData.find((s) => s.rotation !== undefined)?.rotation ?? (stream.tags as { rotate?: string } | undefined)?.rotate ?? 0);
  if (Math.abs(rotation) % 180 === 90) [width, height] = [height, width];
  return { frameCount, fps, width, height };
}

/**
 * Decodes the frames with the given numbers (0-based, presentation order) as RGB and
 * calls onFrame(frameNumber, rgb [h, w, 3]) for each distinct one, in increasing order.
 */
export async function decodeFrames(
  path: string,
  info: VideoInfo,
  numbers: readonly number[],
  onFrame: (frame: number, rgb: Uint8Array) => Promise<void>,
  options: Pick<LoadVideoOptions, 'ffmpegPath' | 'signal'> = {},
): Promise<void> {
  const wanted = [...new Set(numbers)].sort((a, b) => a - b);
  const frameBytes = info.width * info.height * 3;
  const select = wanted.map((n) => `eq(n\\,${n})`).join('+');
  let frame = new Uint8Array(frameBytes);
  let filled = 0;
  let delivered = 0;
  let chain = Promise.resolve();
  let failed: unknown;
  const onData = (chunk: Buffer) => {
    let at = 0;
    while (at < chunk.length) {
      const take = Math.min(frameBytes - filled, chunk.length - at);
      frame.set(chunk.subarray(at, at + take), filled);
      filled += take;
      at += take;
      if (filled === frameBytes) {
        const done = frame;
        const number = wanted[delivered++];
        if (number !== undefined) chain = chain.then(() => onFrame(number, done)).catch((e) => void (failed ??= e));
        frame = new Uint8Array(frameBytes);
        filled = 0;
      }
    }
  };
  const { stderr, code } = await run(
    ffmpegBinary(options.ffmpegPath),
    ['-nostdin', '-v', 'error', '-i', path, '-map', '0:v:0', '-vf', `select=${select}`, '-vsync', '0',
      '-frames:v', String(wanted.length), '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'],
    path,
    'ffmpeg',
    options.signal,
    onData,
  );
  await chain;
  if (failed !== undefined) throw failed;
  if (code !== 0) throw videoError(path, stderr.split('\n').pop() || `ffmpeg exited with ${code}`);
  if (delivered !== wanted.length || filled !== 0) {
    throw videoError(path, `decoded ${delivered} of the ${wanted.length} frames asked for (${wanted.join(', ')})`);
  }
}

/**
 * Loads a video as the card's `load_video(path, bound, input_size=448, max_num=1,
 * num_segments=8)`: returns the frames' tiles and the tiles per frame. Errors are
 * InternVLError ERR_IMAGE naming the file (ERR_INVALID_ARG for bad options).
 */
export async function loadVideo(path: string, options: LoadVideoOptions = {}): Promise<LoadedVideo> {
  const callerStack = new Error().stack;
  try {
    if (typeof path !== 'string' || path.length === 0) throw invalidArg('video', 'file path', path);
    const numSegments = options.numSegments ?? 8;
    if (!Number.isInteger(numSegments) || numSegments < 1 || numSegments > 4096) {
      throw invalidArg('numSegments', 'integer between 1 and 4096', numSegments);
    }
    const bound = options.bound;
    if (bound !== undefined && !(Array.isArray(bound) && bound.length === 2 && bound.every((b) => typeof b === 'number' && Number.isFinite(b)) && bound[0] <= bound[1])) {
      throw invalidArg('bound', '[start, end] seconds with start <= end', bound);
    }
    const perFrame = options.maxTilesPerFrame;
    if (perFrame !== undefined && !(Number.isInteger(perFrame) && perFrame >= 1 && perFrame <= 40)) {
      throw invalidArg('maxTilesPerFrame', 'integer between 1 and 40', perFrame);
    }
    const tiling = checkTilingOptions(
      { maxTiles: options.maxTilesPerFrame, useThumbnail: options.useThumbnail, tileSize: options.imageSize },
      { minTiles: 1, maxTiles: 1, useThumbnail: true, tileSize: 448 },
    );
    const { onProgress } = options;
    if (onProgress !== undefined && typeof onProgress !== 'function') throw invalidArg('onProgress', 'function', onProgress);
    options.signal?.throwIfAborted();
    const info = await probeVideo(path, options);
    if (info.width * info.height > DEFAULT_MAX_PIXELS) throw videoError(path, `frames of ${info.width}x${info.height} are too large`);
    const indices = frameIndices({ ...(bound ? { bound } : {}), fps: info.fps, maxFrame: info.frameCount - 1, numSegments });
    const plan = planTiles(info.width, info.height, tiling);
    const S = tiling.tileSize;
    const perTile = 3 * S * S;
    const native = loadNative();
    const pixelValues = await native.allocFloat32(indices.length * plan.tiles * perTile);
    const slots = new Map<number, number[]>(); // frame number → positions in the sampled list
    indices.forEach((n, i) => slots.set(n, [...(slots.get(n) ?? []), i]));
    let framesDone = 0;
    onProgress?.(0, slots.size);
    await decodeFrames(
      path,
      info,
      indices,
      async (n, rgb) => {
        const [first, ...repeats] = slots.get(n) ?? [];
        const at = (i: number) => pixelValues.subarray(i * plan.tiles * perTile, (i + 1) * plan.tiles * perTile);
        try {
          await native.preprocessTiles(rgb, info.width, info.height, plan.grid[0], plan.grid[1], S, plan.thumbnail, at(first));
        } catch (e) {
          throw fromNative(e);
        }
        for (const i of repeats) at(i).set(at(first));
        onProgress?.(++framesDone, slots.size);
      },
      options,
    );
    return {
      pixelValues,
      numPatchesList: indices.map(() => plan.tiles),
      frameIndices: indices,
      tiles: indices.length * plan.tiles,
      frameCount: info.frameCount,
      fps: info.fps,
      width: info.width,
      height: info.height,
    };
  } catch (e) {
    throw withCallerStack(e, callerStack);
  }
}
