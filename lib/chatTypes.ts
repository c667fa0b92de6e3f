/** Public request/response shapes of {@link InternVL.chat} and friends. */
import type { GenerationOptions } from './generation.js';

/** An image as a path, encoded bytes (JPEG/PNG/WebP/GIF/TIFF/AVIF), or a preprocessed tensor. */
export type ImageInput = string | Buffer | Uint8Array;

/** One finished round of conversation. Tuples `[question, answer]` are accepted too. */
export interface HistoryTurn {
  question: string;
  answer: string;
}
/** Earlier turns of a conversation: `{ question, answer }` objects or `[question, answer]` pairs (the reference's form). */
export type HistoryInput = ReadonlyArray<HistoryTurn | readonly [string, string]>;

/** How images are cut into 448² tiles (dynamic preprocessing): tile limits and the thumbnail. */
export interface ImageOptions {
  /** Most tiles per image (config `max_dynamic_patch`, 12 for InternVL2). */
  maxTiles?: number;
  /** Fewest tiles per image (config `min_dynamic_patch`). */
  minTiles?: number;
  /** Append a whole-image thumbnail tile when an image has more than one tile (config `use_thumbnail`). */
  useThumbnail?: boolean;
  /** Apply EXIF orientation (default true; the model card's code does not). */
  autoOrient?: boolean;
}

/** One round of chat: the question, the history so far, its images and generation options. */
export interface ChatRequest {
  question: string;
  /** Images for this turn. Several images go in separately (`Image-1: <image>` ...) unless combineImages. */
  images?: ImageInput[];
  /** Put all images' tiles behind one `<image>` (the card's "combined" mode). */
  combineImages?: boolean;
  /** Preprocessed tiles [T,3,S,S] (normalized), as the reference's `pixel_values`. */
  pixelValues?: Float32Array;
  /** Tiles per `<image>` placeholder, in order; must sum to the tiles given. */
  numPatchesList?: number[];
  history?: HistoryInput;
  generation?: GenerationOptions;
  imageOptions?: ImageOptions;
  /** Overrides the system message for this call. */
  systemMessage?: string;
  signal?: AbortSignal;
  /** Called with each new piece of response text (and the token that completed it). */
  onToken?: (text: string, tokenId: number) => void;
  /** On abort, resolve with the text so far (finishReason 'aborted') instead of rejecting. */
  partialOnAbort?: boolean;
}

/** Token counts of a call (OpenAI's `usage`). */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/** Where a call's time went, in milliseconds. */
export interface Timings {
  preprocessMs: number;
  generateMs: number;
  totalMs: number;
  /** Engine side: from the request's submission to the engine (after preprocessing) until it was admitted (KV blocks reserved). Absent if it never was (an abort). */
  queueMs?: number;
  /** Engine side: from the submission until the first generated token (of the slowest sequence in a batch). Absent if none was generated. */
  firstTokenMs?: number;
}

/** Why generation ended: a stop sequence or eos ('stop'), the token limit ('length'), or an abort ('aborted'). */
export type FinishReason = 'stop' | 'length' | 'aborted';

/** What {@link InternVL.chat} resolves with: the response, the new history, usage and timings. */
export interface ChatResult {
  response: string;
  /** The history including this turn, to pass to the next call. */
  history: HistoryTurn[];
  usage: Usage;
  finishReason: FinishReason;
  /** Generated token ids, eos included when generation stopped on it. */
  tokenIds: number[];
  /** Tiles per image of this turn. */
  imageTiles: number[];
  timings: Timings;
}

/** What {@link InternVL.batchChat} takes: several independent single-turn questions, each with its own images. */
export interface BatchChatRequest {
  questions: string[];
  /** One image (or none: null) per question. */
  images?: Array<ImageInput | null>;
  /** Reference form: all tiles, and tiles per question. */
  pixelValues?: Float32Array;
  numPatchesList?: number[];
  generation?: GenerationOptions;
  imageOptions?: ImageOptions;
  systemMessage?: string;
  signal?: AbortSignal;
}

/** What {@link InternVL.batchChat} resolves with: one response per question. */
export interface BatchChatResult {
  responses: string[];
  results: Array<Omit<ChatResult, 'history' | 'timings'>>;
  timings: Timings;
}
