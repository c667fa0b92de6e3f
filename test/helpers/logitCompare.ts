/**
 * Teacher-forced logit agreement between two runs of the same positions (int8 vs bf16, one
 * backend vs another): top-1 agreement overall and on the positions the reference decides,
 * and the logit cosine. Used by test/engine/int8.test.ts and test/gpu/int8.test.ts.
 */
export interface LogitFigures {
  positions: number;
  top1: number;
  cosMean: number;
  cosMin: number;
  /** Positions whose bf16 top-1 leads the runner-up by at least kDecided × the logits' std. */
  decided: number;
  top1Decided: number;
  /** Largest bf16 gap (in logit stds) between the bf16 top-1 and the token int8 chose instead. */
  worstFlipGap: number;
}

/** A position is "decided" when its bf16 top-1 margin is at least this many logit stds. */
export const kDecided = 0.1;

export function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

export function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

/** a: the candidate's logits (int8, CUDA), b: the reference's, per position. */
export function compareLogits(a: Float32Array[], b: Float32Array[]): LogitFigures {
  let agree = 0;
  let cosSum = 0;
  let cosMin = 1;
  let decided = 0;
  let agreeDecided = 0;
  let worstFlipGap = 0;
  for (let i = 0; i < a.length; i++) {
    const ta = argmax(a[i]);
    const tb = argmax(b[i]);
    let mean = 0;
    for (const v of b[i]) mean += v;
    mean /= b[i].length;
    let s2 = 0;
    let second = -Infinity;
    for (let k = 0; k < b[i].length; k++) {
      s2 += (b[i][k] - mean) ** 2;
      if (k !== tb) second = Math.max(second, b[i][k]);
    }
    const std = Math.sqrt(s2 / b[i].length);
    const isDecided = b[i][tb] - second >= kDecided * std;
    if (isDecided) decided++;
    if (ta === tb) {
      agree++;
      if (isDecided) agreeDecided++;
    } else {
      worstFlipGap = Math.max(worstFlipGap, (b[i][tb] - b[i][ta]) / std);
    }
    const c = cosine(a[i], b[i]);
    cosSum += c;
    cosMin = Math.min(cosMin, c);
  }
  return {
    positions: a.length,
    top1: agree / a.length,
    cosMean: cosSum / a.length,
    cosMin,
    decided,
    top1Decided: agreeDecided / decided,
    worstFlipGap,
  };
}

