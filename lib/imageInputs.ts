/**
 * Turns a call's images (paths/bytes, or the reference's pixelValues +
 * numPatchesList) into one tile tensor and the tiles per `<image>` placeholder.
 */
import type { ImageInput, ImageOptions } from './chatTypes.js';
import { InternVLError, invalidArg } from './errors.js';
import { countImageTiles, loadImage } from './vision/image.js';

export interface PreparedImages {
  /** [tiles,3,S,S] normalized, images in placeholder order. */
  pixelValues: Float32Array;
  tiles: number;
  numPatchesList: number[];
}

export interface PrepareRequest {
  images?: ImageInput[];
  pixelValues?: Float32Array;
  numPatchesList?: number[];
  /** All images behind one placeholder. */
  combine: boolean;
  /** The question, to know whether it already has placeholders for separate images. */
  labelQuestion: string;
  imageSize: number;
  options: ImageOptions;
  signal?: AbortSignal;
  /**
   * The most tiles the call can use (the context's room for image tokens). Images are counted
   * from their headers first; more tiles than this is ERR_CONTEXT_OVERFLOW before any decoding.
   */
  tileBudget?: number;
  /** For that message: image tokens per tile and the context length. */
  budgetContext?: { numImageToken: number; contextLength: number };
}

const EMPTY: PreparedImages = { pixelValues: new Float32Array(0), tiles: 0, numPatchesList: [] };

function checkPatchList(list: unknown, total: number): number[] {
  if (!Array.isArray(list) || list.some((n) => !Number.isInteger(n) || n < 1)) {
    throw invalidArg('numPatchesList', 'array of positive integers', list);
  }
  const sum = (list as number[]).reduce((a, b) => a + b, 0);
  if (sum !== total) {
    throw new InternVLError('ERR_INVALID_ARG', `numPatchesList sums to ${sum} tiles but ${total} tiles were given`);
  }
  return [...(list as number[])];
}

export async function prepareImages(req: PrepareRequest): Promise<PreparedImages> {
  const tileSize = 3 * req.imageSize * req.imageSize;
  if (req.pixelValues !== undefined) {
    if (req.images !== undefined && req.images.length > 0) {
      throw new InternVLError('ERR_INVALID_ARG', 'Pass either images or pixelValues, not both');
    }
    const pv = req.pixelValues;
    // By tag, not instanceof: the addon's arrays (loadVideo's) may come from another realm (vm contexts, jest).
    if (Object.prototype.toString.call(pv) !== '[object Float32Array]' || pv.length === 0 || pv.length % tileSize !== 0) {
      throw invalidArg('pixelValues', `Float32Array of [tiles,3,${req.imageSize},${req.imageSize}] values`, pv);
    }
    // NaN/Infinity would run through the ViT and come out as garbage text, not an error
    for (let i = 0; i < pv.length; i++) {
      if (!Number.isFinite(pv[i])) {
        throw new InternVLError('ERR_INVALID_ARG', `pixelValues[${i}] is ${pv[i]}: pixel values must be finite numbers`);
      }
    }
    const tiles = pv.length / tileSize;
    const list = req.numPatchesList === undefined ? [tiles] : checkPatchList(req.numPatchesList, tiles);
    return { pixelValues: pv, tiles, numPatchesList: list };
  }
  const images = req.images ?? [];
  if (!Array.isArray(images)) throw invalidArg('images', 'array of paths or Buffers', images);
  if (images.length === 0) {
    if (req.numPatchesList !== undefined && req.numPatchesList.length > 0) {
      throw new InternVLError('ERR_INVALID_ARG', 'numPatchesList was given without images or pixelValues');
    }
    return EMPTY;
  }
  const opts = { ...req.options, imageSize: req.imageSize, ...(req.signal ? { signal: req.signal } : {}) };
  if (req.tileBudget !== undefined) {
    const counts = await Promise.all(images.map((img) => countImageTiles(img, opts)));
    const total = counts.reduce((a, b) => a + b, 0);
    if (total > req.tileBudget) {
      const c = req.budgetContext;
      throw new InternVLError(
        'ERR_CONTEXT_OVERFLOW',
        `${images.length} image(s) make ${total} tiles` +
          (c ? ` = ${total * c.numImageToken} image tokens (${c.numImageToken} per tile) but the context holds ${c.contextLength}` : ` but at most ${req.tileBudget} fit`) +
          ' (fewer images or a lower maxTiles)',
      );
    }
  }
  const loaded = await Promise.all(images.map((img) => loadImage(img, opts)));
  const tiles = loaded.reduce((a, l) => a + l.tiles, 0);
  const pixelValues = new Float32Array(tiles * tileSize);
  let offset = 0;
  for (const l of loaded) {
    pixelValues.set(l.pixelValues, offset);
    offset += l.pixelValues.length;
  }
  let numPatchesList: number[];
  if (req.numPatchesList !== undefined) numPatchesList = checkPatchList(req.numPatchesList, tiles);
  else if (req.combine || loaded.length === 1) numPatchesList = [tiles];
  else numPatchesList = loaded.map((l) => l.tiles);
  return { pixelValues, tiles, numPatchesList };
}

/**
 * For several separate images whose question has no placeholders, the card writes
 * `Image-1: <image>\nImage-2: <image>\n` before the question; do the same.
 */
export function labelSeparateImages(question: string, count: number): string {
  if (count < 2 || question.includes('<image>')) return question;
  let prefix = '';
  for (let i = 1; i <= count; i++) prefix += `Image-${i}: <image>\n`;
  return prefix + question;
}
