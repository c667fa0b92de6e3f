/**
 * One image → the model's tile tensor, exactly as the reference `load_image`:
 * decode, choose the grid, PIL-bicubic resize + crop + thumbnail, normalize.
 *
 * The header is read first (sizes the tiles), so that the output memory is obtained
 * while sharp decodes; the pixel work then runs in the addon off the JS thread.
 */
import { InternVLError, fromNative, invalidArg } from '../errors.js';
import { loadNative } from '../native.js';
import { type DecodeOptions, checkDecodeOptions, decodeRgb, describeInput, readHeader, readImageBytes } from './decode.js';
import { type Grid, type TilingOptions, checkTilingOptions, planTiles } from './tiling.js';

/** Options of {@link loadImage}: tiling and decoding limits. */
export interface LoadImageOptions extends DecodeOptions {
  /** Tile size in pixels (config `force_image_size`; 448 for InternVL2). */
  imageSize?: number;
  /** Fewest tiles before the thumbnail (config `min_dynamic_patch`, default 1). */
  minTiles?: number;
  /** Most tiles before the thumbnail (config `max_dynamic_patch`; default 12, the card's `load_image`). */
  maxTiles?: number;
  /** Append the whole image as one more tile when there is more than one (config `use_thumbnail`, default true). */
  useThumbnail?: boolean;
  signal?: AbortSignal;
}

/** An image decoded and tiled as the model card's `load_image` does: normalized tiles and their count. */
export interface LoadedImage {
  /** [tiles, 3, S, S] normalized with ImageNet mean/std. */
  pixelValues: Float32Array;
  /** Tiles including the thumbnail. */
  tiles: number;
  /** Grid before the thumbnail: [cols, rows]. */
  grid: Grid;
  /** Decoded size (after EXIF orientation when autoOrient). */
  width: number;
  height: number;
}

/** The card's `load_image(..., input_size=448, max_num=12)` with `use_thumbnail=True`. */
export const DEFAULT_TILING: TilingOptions = { minTiles: 1, maxTiles: 12, useThumbnail: true, tileSize: 448 };

/** The image fields of a model's config.json (or of lib/config.ts's ModelConfig). */
export interface VisionConfigLike {
  force_image_size?: number | null;
  min_dynamic_patch?: number;
  max_dynamic_patch?: number;
  use_thumbnail?: boolean;
  forceImageSize?: number;
  minDynamicPatch?: number;
  maxDynamicPatch?: number;
  useThumbnail?: boolean;
}

/**
 * Default tiling options from a model's config: `force_image_size`, `min_dynamic_patch`,
 * `max_dynamic_patch`, `use_thumbnail` (config.json spelling or camelCase). Options given
 * per image override these.
 */
export function imageOptionsFromConfig(config: VisionConfigLike): LoadImageOptions {
  const pick = <T>(...vs: Array<T | null | undefined>): T | undefined => vs.find((v) => v !== undefined && v !== null) ?? undefined;
  const out: LoadImageOptions = {};
  const imageSize = pick(config.forceImageSize, config.force_image_size);
  const minTiles = pick(config.minDynamicPatch, config.min_dynamic_patch);
  const maxTiles = pick(config.maxDynamicPatch, config.max_dynamic_patch);
  const useThumbnail = pick(config.useThumbnail, config.use_thumbnail);
  if (imageSize !== undefined) out.imageSize = imageSize;
  if (minTiles !== undefined) out.minTiles = minTiles;
  if (maxTiles !== undefined) out.maxTiles = maxTiles;
  if (useThumbnail !== undefined) out.useThumbnail = useThumbnail;
  return out;
}

export function tilingFromOptions(options: LoadImageOptions, defaults: TilingOptions = DEFAULT_TILING): TilingOptions {
  return checkTilingOptions(
    { minTiles: options.minTiles, maxTiles: options.maxTiles, useThumbnail: options.useThumbnail, tileSize: options.imageSize },
    defaults,
  );
}

/** Gives an error the stack of the call that started the work (kept across the async hops). */
export function withCallerStack(e: unknown, callerStack: string | undefined): unknown {
  if (!(e instanceof Error) || !callerStack) return e;
  const frames = callerStack.split('\n').slice(1).join('\n');
  e.stack = `${e.name}: ${e.message}\n${frames}`;
  return e;
}

function checkInput(input: unknown): asserts input is string | Uint8Array {
  if (typeof input === 'string') {
    if (input.length === 0) throw invalidArg('image', 'file path, Buffer or Uint8Array', input);
    return;
  }
  // By tag, not instanceof: buffers may come from another realm (vm contexts, workers).
  if (!ArrayBuffer.isView(input) || Object.prototype.toString.call(input) !== '[object Uint8Array]') {
    throw invalidArg('image', 'file path, Buffer or Uint8Array', input);
  }
}

async function load(input: string | Uint8Array, options: LoadImageOptions): Promise<LoadedImage> {
  checkInput(input);
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'object', options);
  const tiling = tilingFromOptions(options);
  const decode = checkDecodeOptions(options);
  const signal = options.signal;
  signal?.throwIfAborted();
  const name = describeInput(input);
  const bytes = await readImageBytes(input);
  const header = await readHeader(bytes, name, decode);
  signal?.throwIfAborted();
  const native = loadNative();
  let plan = planTiles(header.width, header.height, tiling);
  const S = tiling.tileSize;
  let out: Promise<Float32Array> | undefined = native.allocFloat32(plan.tiles * 3 * S * S);
  out.catch(() => undefined); // awaited below unless decoding fails first
  const rgb = await decodeRgb(input, decode, { bytes, header });
  signal?.throwIfAborted();
  if (rgb.width !== header.width || rgb.height !== header.height) {
    // The header disagreed with the pixels (should not happen): plan from what was decoded.
    plan = planTiles(rgb.width, rgb.height, tiling);
    out = undefined;
  }
  try {
    const pixelValues = await native.preprocessTiles(
      rgb.data,
      rgb.width,
      rgb.height,
      plan.grid[0],
      plan.grid[1],
      S,
      plan.thumbnail,
      out ? await out : undefined,
    );
    return { pixelValues, tiles: plan.tiles, grid: plan.grid, width: rgb.width, height: rgb.height };
  } catch (e) {
    const err = fromNative(e);
    throw err.code === 'ERR_INTERNAL' ? new InternVLError('ERR_IMAGE', `Cannot preprocess image (${name}): ${err.message}`, { cause: e }) : err;
  }
}

/**
 * Loads one image (file path or encoded bytes: JPEG, PNG, WebP, GIF, TIFF, AVIF/HEIF)
 * into normalized tiles. Rejects with InternVLError: ERR_IMAGE for unreadable,
 * truncated, empty, unsupported or oversized images (the message names the file or
 * "buffer of N bytes" and the reason), ERR_INVALID_ARG for bad options; the stack is
 * the caller's.
 */
export async function loadImage(input: string | Uint8Array, options: LoadImageOptions = {}): Promise<LoadedImage> {
  const callerStack = new Error().stack;
  try {
    return await load(input, options);
  } catch (e) {
    throw withCallerStack(e, callerStack);
  }
}

/**
 * How many tiles an image will make, from its header alone (nothing is decoded): lets a caller
 * refuse a request whose images cannot fit before spending memory on decoding them.
 * Errors as {@link loadImage}.
 */
export async function countImageTiles(input: string | Uint8Array, options: LoadImageOptions = {}): Promise<number> {
  const callerStack = new Error().stack;
  try {
    checkInput(input);
    const header = await readHeader(await readImageBytes(input), describeInput(input), checkDecodeOptions(options));
    return planTiles(header.width, header.height, tilingFromOptions(options)).tiles;
  } catch (e) {
    throw withCallerStack(e, callerStack);
  }
}

export interface CombinedImages {
  /** [sum of tiles, 3, S, S]: the images' tiles in order. */
  pixelValues: Float32Array;
  tiles: number;
  /** Tiles per image, the reference's `num_patches_list`. */
  numPatchesList: number[];
}

/** Concatenates loaded images' tiles (the reference's `torch.cat` of several `load_image`s). */
export function combineImages(images: ReadonlyArray<Pick<LoadedImage, 'pixelValues' | 'tiles'>>): CombinedImages {
  if (!Array.isArray(images)) throw invalidArg('images', 'array of loaded images', images);
  if (images.length === 1) {
    return { pixelValues: images[0].pixelValues, tiles: images[0].tiles, numPatchesList: [images[0].tiles] };
  }
  const total = images.reduce((n, im) => n + im.pixelValues.length, 0);
  const pixelValues = new Float32Array(total);
  let offset = 0;
  for (const im of images) {
    pixelValues.set(im.pixelValues, offset);
    offset += im.pixelValues.length;
  }
  const numPatchesList = images.map((im) => im.tiles);
  return { pixelValues, tiles: numPatchesList.reduce((a, b) => a + b, 0), numPatchesList };
}

/** Loads several images (concurrently) and concatenates their tiles. */
export async function loadImages(inputs: ReadonlyArray<string | Uint8Array>, options: LoadImageOptions = {}): Promise<CombinedImages> {
  const callerStack = new Error().stack;
  try {
    if (!Array.isArray(inputs)) throw invalidArg('images', 'array of paths or buffers', inputs);
    return combineImages(await Promise.all(inputs.map((input) => load(input, options))));
  } catch (e) {
    throw withCallerStack(e, callerStack);
  }
}
