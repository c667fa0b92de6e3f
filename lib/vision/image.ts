/**
 * One image → the model's tile tensor, exactly as the reference `load_image`:
 * decode, choose the grid, PIL-bicubic resize + crop + thumbnail, normalize.
 * The pixel work runs in the addon off the JS thread.
 */
import { InternVLError, fromNative, invalidArg } from '../errors.js';
import { loadNative } from '../native.js';
import { type DecodeOptions, decodeRgb, describeInput } from './decode.js';
import { type Grid, checkTilingOptions, planTiles } from './tiling.js';

export interface LoadImageOptions extends DecodeOptions {
  /** Tile size in pixels (the model's force_image_size; 448 for InternVL2). */
  imageSize?: number;
  minTiles?: number;
  maxTiles?: number;
  useThumbnail?: boolean;
  signal?: AbortSignal;
}

export interface LoadedImage {
  /** [tiles, 3, S, S] normalized with ImageNet mean/std. */
  pixelValues: Float32Array;
  tiles: number;
  grid: Grid;
  width: number;
  height: number;
}

const DEFAULTS = { minTiles: 1, maxTiles: 12, useThumbnail: true, tileSize: 448 };

export async function loadImage(input: string | Uint8Array, options: LoadImageOptions = {}): Promise<LoadedImage> {
  const callerStack = new Error().stack;
  if (typeof input !== 'string' && !(input instanceof Uint8Array)) throw invalidArg('image', 'file path, Buffer or Uint8Array', input);
  const tiling = checkTilingOptions(
    { minTiles: options.minTiles, maxTiles: options.maxTiles, useThumbnail: options.useThumbnail, tileSize: options.imageSize },
    DEFAULTS,
  );
  options.signal?.throwIfAborted();
  const rgb = await decodeRgb(input, options);
  options.signal?.throwIfAborted();
  const plan = planTiles(rgb.width, rgb.height, tiling);
  try {
    const pixelValues = await loadNative().preprocessTiles(
      rgb.data,
      rgb.width,
      rgb.height,
      plan.grid[0],
      plan.grid[1],
      tiling.tileSize,
      plan.thumbnail,
    );
    return { pixelValues, tiles: plan.tiles, grid: plan.grid, width: rgb.width, height: rgb.height };
  } catch (e) {
    const err = fromNative(e, callerStack);
    throw err.code === 'ERR_INTERNAL' ? new InternVLError('ERR_IMAGE', `Cannot preprocess image (${describeInput(input)}): ${err.message}`) : err;
  }
}
