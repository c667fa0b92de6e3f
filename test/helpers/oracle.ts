/**
 * The fp32 CPU engine as the oracle for bf16 GPU tokens: teacher forcing the tokens a GPU run
 * chose, how far below the oracle's top logit each choice was, relative to the largest |logit|.
 * Exact token equality is not asked of bf16 runs: the random-weight fixtures have near-ties
 * that bf16 rounding flips (cuda/dev/backend_parity_results.md); a wrong kernel gives gaps of
 * the order of the logits themselves.
 */
import type { EngineModel } from '../../lib/engine/nativeModel.js';
import { GREEDY } from './faultHooks.js';
import { type GoldenSample, goldenSequence } from './goldens.js';

/** Where bf16 rounding can move the greedy choice (relative gap). */
export const BF16_GREEDY_TOL = 5e-2;

export async function greedyGapUnderOracle(cpu: EngineModel, s: GoldenSample, tokens: number[]): Promise<number> {
  const seq = goldenSequence(s);
  const sequences = tokens.map((_, j) => ({ ...seq, inputIds: Int32Array.from([...s.input_ids, ...tokens.slice(0, j)]) }));
  const r = await cpu.generate({ sequences, maxNewTokens: 0, eosTokenIds: [], sampling: GREEDY, returnPromptLogits: true }).promise;
  let worst = 0;
  r.forEach((res, j) => {
    const l = res.promptLogits as Float32Array;
    let top = -Infinity;
    let scale = 0;
    for (const v of l) {
      top = Math.max(top, v);
      scale = Math.max(scale, Math.abs(v));
    }
    worst = Math.max(worst, (top - l[tokens[j]]) / scale);
  });
  return worst;
}
