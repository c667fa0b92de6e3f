/**
 * Decoding with sharp into what the reference's `Image.open(f).convert('RGB')`
 * sees: 8-bit RGB, alpha dropped (not composited), embedded ICC profiles ignored
 * (PIL does not apply them), first frame of animations. EXIF orientation is applied
 * by default (the model card's code does not; `autoOrient: false` matches it).
 */
import sharp from 'sharp';
import { InternVLError } from '../errors.js';

export interface DecodeOptions {
  autoOrient?: boolean;
  /** Largest width×height accepted (decompression-bomb guard). */
  maxPixels?: number;
}

export interface RgbImage {
  data: Uint8Array; // [height, width, 3]
  width: number;
  height: number;
}

export const DEFAULT_MAX_PIXELS = 178_956_970; // PIL's own MAX_IMAGE_PIXELS × 2, the limit where it errors

export function describeInput(input: string | Uint8Array): string {
  return typeof input === 'string' ? input : `buffer of ${input.length} bytes`;
}

export async function decodeRgb(input: string | Uint8Array, options: DecodeOptions = {}): Promise<RgbImage> {
  const name = describeInput(input);
  if (typeof input !== 'string' && input.length === 0) throw new InternVLError('ERR_IMAGE', `Cannot read image (${name}): it is empty`);
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  try {
    let img = sharp(typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.length), {
      limitInputPixels: maxPixels,
      ignoreIcc: true,
      animated: false,
      failOn: 'error',
    });
    if (options.autoOrient ?? true) img = img.rotate();
    const { data, info } = await img
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    const reason = /pixel limit/i.test(msg)
      ? `it has more than ${maxPixels} pixels (raise maxPixels to allow it)`
      : /unsupported image format/i.test(msg)
        ? 'unsupported or unrecognized image format'
        : /missing|no such file|ENOENT/i.test(msg)
          ? 'file not found'
          : msg;
    throw new InternVLError('ERR_IMAGE', `Cannot read image (${name}): ${reason}`, { cause: e });
  }
}
