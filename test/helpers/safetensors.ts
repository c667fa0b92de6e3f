/**
 * A small safetensors reader and writer for tests, independent of the native loader:
 * [u64 LE header length][JSON header][data], offsets relative to the data section.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export type StDType = 'F32' | 'BF16' | 'F16';

export interface StTensor {
  dtype: StDType;
  shape: number[];
  data: Float32Array; // values (converted on write / widened on read)
}

export interface StHeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const scratch = new DataView(new ArrayBuffer(4));

export function f32ToBf16(x: number): number {
  scratch.setFloat32(0, x, true);
  const bits = scratch.getUint32(0, true);
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x007fffff) return ((bits >>> 16) | 0x40) & 0xffff;
  const rounding = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + rounding) >>> 16) & 0xffff;
}

export function bf16ToF32(h: number): number {
  scratch.setUint32(0, (h << 16) >>> 0, true);
  return scratch.getFloat32(0, true);
}

export function f32ToF16(x: number): number {
  // round to nearest even via float math; enough for test data in the normal range
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24); // subnormal (or zero)
  let e = Math.floor(Math.log2(a));
  let mi = Math.round((a / 2 ** e - 1) * 1024);
  if (mi === 1024) {
    mi = 0;
    e += 1;
  }
  return sign | ((e + 15) << 10) | mi;
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function dtypeBytes(d: string): number {
  return d === 'F32' ? 4 : 2;
}

/** Bytes of a safetensors file holding `tensors` in insertion order. */
export function encodeSafetensors(tensors: Record<string, StTensor>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const parts: Buffer[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`${name}: shape ${t.shape} has ${n} elements, data ${t.data.length}`);
    const bytes = Buffer.alloc(n * dtypeBytes(t.dtype));
    for (let i = 0; i < n; i++) {
      if (t.dtype === 'F32') bytes.writeFloatLE(t.data[i], 4 * i);
      else if (t.dtype === 'BF16') bytes.writeUInt16LE(f32ToBf16(t.data[i]), 2 * i);
      else bytes.writeUInt16LE(f32ToF16(t.data[i]), 2 * i);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    parts.push(bytes);
  }
  return assemble(JSON.stringify(header), Buffer.concat(parts));
}

/** [u64 length][header padded with spaces to a multiple of 8][data]. */
export function assemble(headerJson: string, data: Buffer): Buffer {
  let h = Buffer.from(headerJson, 'utf8');
  const pad = (8 - (h.length % 8)) % 8;
  if (pad) h = Buffer.concat([h, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

export function writeSafetensors(path: string, tensors: Record<string, StTensor>): void {
  writeFileSync(path, encodeSafetensors(tensors));
}

/** Header (without __metadata__) and the data section of a file's bytes. */
export function splitSafetensors(buf: Buffer): { header: Record<string, StHeaderEntry>; data: Buffer; headerJson: string } {
  const n = Number(buf.readBigUInt64LE(0));
  const headerJson = buf.subarray(8, 8 + n).toString('utf8');
  const header = JSON.parse(headerJson) as Record<string, StHeaderEntry>;
  delete (header as Record<string, unknown>).__metadata__;
  return { header, data: buf.subarray(8 + n), headerJson };
}

/** Every tensor of a file, widened to f32. */
export function readSafetensorsFile(path: string): Record<string, StTensor> {
  const { header, data } = splitSafetensors(readFileSync(path));
  const out: Record<string, StTensor> = {};
  for (const [name, e] of Object.entries(header)) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    const base = e.data_offsets[0];
    for (let i = 0; i < n; i++) {
      if (e.dtype === 'F32') v[i] = data.readFloatLE(base + 4 * i);
      else if (e.dtype === 'BF16') v[i] = bf16ToF32(data.readUInt16LE(base + 2 * i));
      else if (e.dtype === 'F16') v[i] = f16ToF32(data.readUInt16LE(base + 2 * i));
      else throw new Error(`unsupported dtype ${e.dtype} for ${name}`);
    }
    out[name] = { dtype: e.dtype as StDType, shape: e.shape, data: v };
  }
  return out;
}
