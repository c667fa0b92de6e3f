/**
 * Which frames of a video the reference samples: the model card's `get_index`
 * (segment midpoints, numpy's round-half-even), optionally within time bounds.
 */
import { invalidArg } from '../errors.js';

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
