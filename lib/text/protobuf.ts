/**
 * A minimal protocol-buffers wire-format reader: just enough to walk a
 * SentencePiece `tokenizer.model` (ModelProto) without a protobuf dependency.
 *
 * Wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit
 * (3/4, the deprecated groups, are rejected). Every read is bounds-checked and
 * throws {@link ProtobufError} on truncated or malformed input, so a broken
 * file can never hang or crash the caller.
 */

export class ProtobufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtobufError';
  }
}

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

export interface FieldHeader {
  fieldNumber: number;
  wireType: number;
}

// ignoreBOM: a piece may be exactly U+FEFF, which the default decoder would strip.
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

export class ProtoReader {
  private pos: number;
  private readonly end: number;
  private readonly view: DataView;

  constructor(
    private readonly buf: Uint8Array,
    start = 0,
    end = buf.length,
  ) {
    this.pos = start;
    this.end = end;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.pos;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** Reads a varint as an unsigned number (exact up to 2^53; larger values lose precision). */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtobufError(`truncated varint at byte ${this.pos}`);
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    throw new ProtobufError(`varint longer than 10 bytes at byte ${this.pos}`);
  }

  /** A varint read as a signed 32-bit integer (int32 fields: negatives are sign-extended to 10 bytes). */
  int32(): number {
    // Only the low 32 bits matter: bytes 0..4 carry bits 0..34; the rest is sign extension.
    let low = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtobufError(`truncated varint at byte ${this.pos}`);
      const b = this.buf[this.pos++];
      if (i < 5) low |= (b & 0x7f) << (7 * i);
      if ((b & 0x80) === 0) return low | 0;
    }
    throw new ProtobufError(`varint longer than 10 bytes at byte ${this.pos}`);
  }

  bool(): boolean {
    return this.varint() !== 0;
  }

  fixed32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  float(): number {
    this.need(4);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  fixed64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** The payload of a length-delimited field, as a view into the buffer. */
  bytes(): Uint8Array {
    const len = this.varint();
    this.need(len);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  string(): string {
    return utf8.decode(this.bytes());
  }

  /** A reader over the payload of a length-delimited (embedded message) field. */
  message(): ProtoReader {
    const len = this.varint();
    this.need(len);
    const sub = new ProtoReader(this.buf, this.pos, this.pos + len);
    this.pos += len;
    return sub;
  }

  header(): FieldHeader {
    const key = this.varint();
    const fieldNumber = Math.floor(key / 8);
    const wireType = key % 8;
    if (fieldNumber === 0) throw new ProtobufError(`field number 0 at byte ${this.pos}`);
    return { fieldNumber, wireType };
  }

  /** Skips the value of a field of the given wire type. */
  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        this.need(8);
        this.pos += 8;
        return;
      case WIRE_LEN: {
        const len = this.varint();
        this.need(len);
        this.pos += len;
        return;
      }
      case WIRE_FIXED32:
        this.need(4);
        this.pos += 4;
        return;
      default:
        throw new ProtobufError(`unsupported wire type ${wireType} at byte ${this.pos}`);
    }
  }

  /** Throws unless the field has the wire type its schema declares. */
  expect(h: FieldHeader, wireType: number, name: string): void {
    if (h.wireType !== wireType) {
      throw new ProtobufError(`field ${name} (#${h.fieldNumber}) has wire type ${h.wireType}, expected ${wireType}`);
    }
  }

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.end) {
      throw new ProtobufError(`truncated: need ${n} bytes at byte ${this.pos}, message ends at ${this.end}`);
    }
  }
}
