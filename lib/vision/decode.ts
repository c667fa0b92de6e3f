/**
 * Decoding with sharp into what the reference's `Image.open(f).convert('RGB')` sees:
 * 8-bit RGB, first frame of animations, embedded ICC profiles ignored (PIL does not
 * apply them). Checked value for value against Pillow (test/vision):
 *
 * - RGB, L (grey), LA, 1-bit, P (palette, with or without tRNS), 16-bit RGB (PIL keeps
 *   the high byte, as libvips does), RGBA (alpha dropped, not composited), WebP, TIFF,
 *   GIF first frame, JPEG with or without ICC profile: identical.
 * - CMYK JPEG: PIL's naive conversion (R = 255−K − C·(255−K)/255, its integer rounding)
 *   rather than libvips' ICC-based one: identical.
 * - GIF with a transparent colour: PIL keeps the palette colour of the transparent index
 *   under the transparent pixels; libvips gives them alpha 0. Those pixels are filled
 *   with the palette colour from the file: identical.
 * - 16-bit greyscale PNG ('I;16' in PIL): PIL's convert('RGB') clips the 16-bit values
 *   to 255, a near-white image; we keep the high byte (libvips), a deliberate
 *   difference.
 * - AVIF/HEIF, JPEG 2000, JPEG XL: PIL 9 cannot read these; decoded by libvips as is.
 *
 * EXIF orientation is applied by default (PIL + `ImageOps.exif_transpose`); the model
 * card's code does not apply it, and `autoOrient: false` reproduces the card.
 */
import { readFile } from 'node:fs/promises';
import sharp, { type Metadata, type Sharp } from 'sharp';
import { InternVLError, invalidArg } from '../errors.js';

export interface DecodeOptions {
  /** Apply the EXIF orientation (default true). false reproduces the model card's `Image.open(f).convert('RGB')`. */
  autoOrient?: boolean;
  /** Largest width×height accepted, a decompression-bomb guard (default 178,956,970, where PIL itself refuses). */
  maxPixels?: number;
}

export interface RgbImage {
  data: Uint8Array; // [height, width, 3]
  width: number;
  height: number;
}

/** What the header says, before any pixel is decoded. */
export interface ImageHeader {
  format: string;
  /** Size after the EXIF orientation when autoOrient, else as stored. */
  width: number;
  height: number;
  space: string;
  hasAlpha: boolean;
}

/**
 * PIL's `Image.MAX_IMAGE_PIXELS` is 89,478,485 and it raises DecompressionBombError at
 * twice that; this default accepts every image the reference accepts.
 */
export const DEFAULT_MAX_PIXELS = 178_956_970;

/** Formats accepted: raster formats libvips decodes. SVG, PDF and the like are refused. */
const FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif', 'avif', 'jp2', 'jxl']);

export function describeInput(input: string | Uint8Array): string {
  return typeof input === 'string' ? input : `buffer of ${input.length} bytes`;
}

function imageError(name: string, reason: string, cause?: unknown): InternVLError {
  return new InternVLError('ERR_IMAGE', `Cannot read image (${name}): ${reason}`, cause === undefined ? undefined : { cause });
}

export function checkDecodeOptions(o: DecodeOptions): Required<DecodeOptions> {
  const autoOrient = o.autoOrient ?? true;
  const maxPixels = o.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (typeof autoOrient !== 'boolean') throw invalidArg('autoOrient', 'boolean', autoOrient);
  if (typeof maxPixels !== 'number' || !Number.isInteger(maxPixels) || maxPixels < 1) {
    throw invalidArg('maxPixels', 'positive integer', maxPixels);
  }
  return { autoOrient, maxPixels };
}

/** The encoded bytes of a path or buffer; file-system failures become ERR_IMAGE naming the file. */
export async function readImageBytes(input: string | Uint8Array): Promise<Buffer> {
  const name = describeInput(input);
  let bytes: Buffer;
  if (typeof input === 'string') {
    try {
      bytes = await readFile(input);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const reason =
        code === 'ENOENT'
          ? 'file not found'
          : code === 'EISDIR'
            ? 'it is a directory'
            : code === 'EACCES' || code === 'EPERM'
              ? 'permission denied'
              : code === 'ERR_FS_FILE_TOO_LARGE'
                ? 'file too large'
                : (e as Error).message;
      throw imageError(name, reason, e);
    }
  } else {
    bytes = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  }
  if (bytes.length === 0) throw imageError(name, 'it is empty');
  return bytes;
}

function sharpReason(e: unknown, maxPixels: number): string {
  const msg = (e as Error)?.message ?? String(e);
  if (/pixel limit/i.test(msg)) return `it has more than ${maxPixels} pixels (raise maxPixels to allow it)`;
  if (/unsupported image format/i.test(msg)) return 'unsupported or unrecognized image format';
  if (/corrupt header/i.test(msg)) return 'the header is corrupt or truncated';
  if (/premature end|truncated|unexpected end|not enough data|read error|end of (file|stream)/i.test(msg)) {
    return `the file is truncated or corrupt (${msg.trim()})`;
  }
  return msg.trim();
}

function open(bytes: Buffer, o: Required<DecodeOptions>): Sharp {
  return sharp(bytes, {
    limitInputPixels: o.maxPixels,
    ignoreIcc: true,
    animated: false,
    failOn: 'error', // includes truncated data: PIL refuses truncated files too
    autoOrient: o.autoOrient,
  });
}

/** Reads the header: format, size, pixel limit. Throws ERR_IMAGE for what cannot be decoded. */
export async function readHeader(bytes: Buffer, name: string, o: Required<DecodeOptions>): Promise<ImageHeader> {
  let meta: Metadata;
  try {
    // No pixel limit here: it is checked below with the sizes in the message.
    meta = await sharp(bytes, { limitInputPixels: false, autoOrient: o.autoOrient }).metadata();
  } catch (e) {
    throw imageError(name, sharpReason(e, o.maxPixels), e);
  }
  if (!FORMATS.has(meta.format)) throw imageError(name, `unsupported image format '${meta.format}'`);
  const width = o.autoOrient ? meta.autoOrient.width : meta.width;
  const height = o.autoOrient ? meta.autoOrient.height : meta.height;
  if (!(width > 0 && height > 0)) throw imageError(name, `it has no pixels (${width}x${height})`);
  if (width * height > o.maxPixels) {
    throw imageError(name, `it has more than ${o.maxPixels} pixels (${width}x${height}; raise maxPixels to allow it)`);
  }
  return { format: meta.format, width, height, space: meta.space, hasAlpha: meta.hasAlpha };
}

/** Pillow's cmyk2rgb: nk = 255 − K; R = clip(nk − MULDIV255(C, nk)), likewise G, B. */
function cmykToRgb(cmyk: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  for (let p = 0, i = 0, o = 0; p < pixels; p++, i += 4, o += 3) {
    const nk = 255 - cmyk[i + 3];
    for (let c = 0; c < 3; c++) {
      const t = cmyk[i + c] * nk + 128;
      out[o + c] = nk - (((t >> 8) + t) >> 8); // never below 0: MULDIV255(x, nk) <= nk
    }
  }
  return out;
}

/** Skips a GIF's data sub-blocks from `at`; returns the offset after the terminator. */
function skipSubBlocks(b: Uint8Array, at: number): number {
  while (at < b.length && b[at] !== 0) at += b[at] + 1;
  return at + 1;
}

/**
 * The colour PIL shows under the first frame's transparent pixels: the palette entry
 * (local table, else global) of the transparent index. undefined if there is none.
 */
export function gifTransparentColour(b: Uint8Array): [number, number, number] | undefined {
  if (b.length < 13 || String.fromCharCode(b[0], b[1], b[2]) !== 'GIF') return undefined;
  const flags = b[10];
  let at = 13;
  let palette: Uint8Array | undefined;
  if (flags & 0x80) {
    const size = 3 * (1 << ((flags & 7) + 1));
    palette = b.subarray(at, at + size);
    at += size;
  }
  let transparent: number | undefined;
  while (at < b.length) {
    const kind = b[at];
    if (kind === 0x21) {
      const label = b[at + 1];
      if (label === 0xf9 && b[at + 2] === 4 && b[at + 3] & 1) transparent = b[at + 6];
      at = skipSubBlocks(b, at + 2);
    } else if (kind === 0x2c) {
      const local = b[at + 9];
      if (local & 0x80) palette = b.subarray(at + 10, at + 10 + 3 * (1 << ((local & 7) + 1)));
      break;
    } else {
      return undefined;
    }
  }
  if (transparent === undefined || !palette || 3 * transparent + 2 >= palette.length) return undefined;
  return [palette[3 * transparent], palette[3 * transparent + 1], palette[3 * transparent + 2]];
}

/** Decodes to 8-bit RGB [height, width, 3] as PIL's convert('RGB') would. */
export async function decodeRgb(
  input: string | Uint8Array,
  options: DecodeOptions = {},
  known?: { bytes: Buffer; header: ImageHeader },
): Promise<RgbImage> {
  const name = describeInput(input);
  const o = checkDecodeOptions(options);
  const bytes = known?.bytes ?? (await readImageBytes(input));
  const header = known?.header ?? (await readHeader(bytes, name, o));
  try {
    if (header.space === 'cmyk') {
      const { data, info } = await open(bytes, o)
        .pipelineColourspace('cmyk')
        .toColourspace('cmyk')
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      if (info.channels !== 4) throw new Error(`CMYK image decoded to ${info.channels} channels`);
      return { data: cmykToRgb(data, info.width * info.height), width: info.width, height: info.height };
    }
    const gifFill = header.format === 'gif' && header.hasAlpha ? gifTransparentColour(bytes) : undefined;
    if (gifFill) {
      const { data, info } = await open(bytes, o)
        .toColourspace('srgb')
        .ensureAlpha()
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      const pixels = info.width * info.height;
      const rgb = new Uint8Array(pixels * 3);
      for (let p = 0; p < pixels; p++) {
        const transparent = data[4 * p + 3] === 0;
        for (let c = 0; c < 3; c++) rgb[3 * p + c] = transparent ? gifFill[c] : data[4 * p + c];
      }
      return { data: rgb, width: info.width, height: info.height };
    }
    const { data, info } = await open(bytes, o)
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
  } catch (e) {
    throw imageError(name, sharpReason(e, o.maxPixels), e);
  }
}
