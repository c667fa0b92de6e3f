/**
 * Reads a SentencePiece `tokenizer.model` (the serialized `ModelProto` of
 * sentencepiece_model.proto, proto2) into plain data. Only the fields the
 * encoder/decoder need are kept; unknown fields are skipped. Absent fields take
 * their proto2 defaults — notably `add_dummy_prefix`, `remove_extra_whitespaces`
 * and `escape_whitespaces` are TRUE when absent, `model_type` is UNIGRAM.
 */
import { ProtoReader, ProtobufError, WIRE_FIXED32, WIRE_LEN, WIRE_VARINT } from './protobuf.js';

/** ModelProto.SentencePiece.Type */
export const PieceType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
export type PieceType = (typeof PieceType)[keyof typeof PieceType];

/** TrainerSpec.ModelType */
export const ModelType = {
  UNIGRAM: 1,
  BPE: 2,
  WORD: 3,
  CHAR: 4,
} as const;
export type ModelType = number;

export interface SentencePiece {
  piece: string;
  /** float32 score, exactly as stored. */
  score: number;
  type: PieceType;
}

export interface TrainerSpec {
  modelType: ModelType;
  vocabSize: number;
  byteFallback: boolean;
  splitDigits: boolean;
  treatWhitespaceAsSuffix: boolean;
  allowWhitespaceOnlyPieces: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkPiece: string;
  bosPiece: string;
  eosPiece: string;
  padPiece: string;
  unkSurface: string;
}

export interface NormalizerSpec {
  name: string;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

export interface SentencePieceModelProto {
  pieces: SentencePiece[];
  trainerSpec: TrainerSpec;
  normalizerSpec: NormalizerSpec;
  /** Present only when the file has a denormalizer_spec. */
  denormalizerSpec: NormalizerSpec | null;
}

function defaultTrainerSpec(): TrainerSpec {
  return {
    modelType: ModelType.UNIGRAM,
    vocabSize: 8000,
    byteFallback: false,
    splitDigits: false,
    treatWhitespaceAsSuffix: false,
    allowWhitespaceOnlyPieces: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkPiece: '<unk>',
    bosPiece: '<s>',
    eosPiece: '</s>',
    padPiece: '<pad>',
    unkSurface: ' \u2047 ',
  };
}

function defaultNormalizerSpec(): NormalizerSpec {
  return {
    name: '',
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
}

function readPiece(r: ProtoReader): SentencePiece {
  const p: SentencePiece = { piece: '', score: 0, type: PieceType.NORMAL };
  while (!r.done()) {
    const h = r.header();
    switch (h.fieldNumber) {
      case 1:
        r.expect(h, WIRE_LEN, 'SentencePiece.piece');
        p.piece = r.string();
        break;
      case 2:
        r.expect(h, WIRE_FIXED32, 'SentencePiece.score');
        p.score = r.float();
        break;
      case 3:
        r.expect(h, WIRE_VARINT, 'SentencePiece.type');
        p.type = r.int32() as PieceType;
        break;
      default:
        r.skip(h.wireType);
    }
  }
  return p;
}

function readTrainerSpec(r: ProtoReader): TrainerSpec {
  const t = defaultTrainerSpec();
  while (!r.done()) {
    const h = r.header();
    const v = (): number => {
      r.expect(h, WIRE_VARINT, `TrainerSpec #${h.fieldNumber}`);
      return r.int32();
    };
    const s = (): string => {
      r.expect(h, WIRE_LEN, `TrainerSpec #${h.fieldNumber}`);
      return r.string();
    };
    switch (h.fieldNumber) {
      case 3:
        t.modelType = v() as ModelType;
        break;
      case 4:
        t.vocabSize = v();
        break;
      case 35:
        t.byteFallback = v() !== 0;
        break;
      case 25:
        t.splitDigits = v() !== 0;
        break;
      case 24:
        t.treatWhitespaceAsSuffix = v() !== 0;
        break;
      case 26:
        t.allowWhitespaceOnlyPieces = v() !== 0;
        break;
      case 40:
        t.unkId = v();
        break;
      case 41:
        t.bosId = v();
        break;
      case 42:
        t.eosId = v();
        break;
      case 43:
        t.padId = v();
        break;
      case 45:
        t.unkPiece = s();
        break;
      case 46:
        t.bosPiece = s();
        break;
      case 47:
        t.eosPiece = s();
        break;
      case 48:
        t.padPiece = s();
        break;
      case 44:
        t.unkSurface = s();
        break;
      default:
        r.skip(h.wireType);
    }
  }
  // sentencepiece treats an empty piece name as "use the default".
  if (!t.unkPiece) t.unkPiece = '<unk>';
  if (!t.bosPiece) t.bosPiece = '<s>';
  if (!t.eosPiece) t.eosPiece = '</s>';
  if (!t.padPiece) t.padPiece = '<pad>';
  return t;
}

function readNormalizerSpec(r: ProtoReader): NormalizerSpec {
  const n = defaultNormalizerSpec();
  while (!r.done()) {
    const h = r.header();
    switch (h.fieldNumber) {
      case 1:
        r.expect(h, WIRE_LEN, 'NormalizerSpec.name');
        n.name = r.string();
        break;
      case 2:
        r.expect(h, WIRE_LEN, 'NormalizerSpec.precompiled_charsmap');
        n.precompiledCharsmap = r.bytes().slice();
        break;
      case 3:
        r.expect(h, WIRE_VARINT, 'NormalizerSpec.add_dummy_prefix');
        n.addDummyPrefix = r.bool();
        break;
      case 4:
        r.expect(h, WIRE_VARINT, 'NormalizerSpec.remove_extra_whitespaces');
        n.removeExtraWhitespaces = r.bool();
        break;
      case 5:
        r.expect(h, WIRE_VARINT, 'NormalizerSpec.escape_whitespaces');
        n.escapeWhitespaces = r.bool();
        break;
      default:
        r.skip(h.wireType);
    }
  }
  return n;
}

/** Parses a serialized ModelProto. Throws {@link ProtobufError} on malformed input. */
export function parseSentencePieceModel(buf: Uint8Array): SentencePieceModelProto {
  const r = new ProtoReader(buf);
  const pieces: SentencePiece[] = [];
  let trainerSpec = defaultTrainerSpec();
  let normalizerSpec = defaultNormalizerSpec();
  let denormalizerSpec: NormalizerSpec | null = null;
  while (!r.done()) {
    const h = r.header();
    switch (h.fieldNumber) {
      case 1:
        r.expect(h, WIRE_LEN, 'ModelProto.pieces');
        pieces.push(readPiece(r.message()));
        break;
      case 2:
        r.expect(h, WIRE_LEN, 'ModelProto.trainer_spec');
        trainerSpec = readTrainerSpec(r.message());
        break;
      case 3:
        r.expect(h, WIRE_LEN, 'ModelProto.normalizer_spec');
        normalizerSpec = readNormalizerSpec(r.message());
        break;
      case 5:
        r.expect(h, WIRE_LEN, 'ModelProto.denormalizer_spec');
        denormalizerSpec = readNormalizerSpec(r.message());
        break;
      default:
        r.skip(h.wireType);
    }
  }
  if (pieces.length === 0) throw new ProtobufError('the model has no pieces');
  return { pieces, trainerSpec, normalizerSpec, denormalizerSpec };
}
