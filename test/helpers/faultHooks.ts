/**
 * The addon's test-only hooks (native/napi/model.cpp `__testing`), typed here and nowhere
 * in lib/: they are not part of the package's surface.
 *   armFault(model, plan, device = 0)   plan as native/runtime/fault_injection.h:
 *                                       'oom-after=N' (the allocation after the next N fails
 *                                       with ERR_OOM), 'error-after=N' (CUDA: the op after the
 *                                       next N fails with ERR_CUDA and poisons the backend), 'none'
 *   armNextLoad(plan)                   the next CUDA allocator made (the next load's first
 *                                       device) starts armed with plan; 'none' clears it
 *   faultsFired(model, device = 0)      plans fired so far on that device
 *   releaseCache(model)                 cached blocks and idle workspaces back to the driver
 *   hold(model, n) / held(model)        the engine thread runs n more loop iterations that have
 *                                       work, then waits (-1: no limit); held: it is waiting so
 */
import type { EngineModel } from '../../lib/engine/nativeModel.js';
import { loadNative } from '../../lib/native.js';
import type { NativeGenerateRequest, NativeModel, NativeModelStats, NativeSampling } from '../../lib/nativeTypes.js';
import { type GoldenSample, goldenSequence } from './goldens.js';

export const GREEDY: NativeSampling = { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };

/** A golden case's request: greedy, as the goldens were made, stopping at eos like them. */
export const goldenRequest = (s: GoldenSample, eosTokenId: number): NativeGenerateRequest => ({
  sequences: [goldenSequence(s)],
  maxNewTokens: s.generated_ids.length,
  eosTokenIds: [eosTokenId],
  sampling: GREEDY,
});
/** Outlives goldenRequest (no eos, more tokens): every step the golden request is in, this one is too. */
export const longRequest = (s: GoldenSample): NativeGenerateRequest => ({
  sequences: [goldenSequence(s)],
  maxNewTokens: 160,
  eosTokenIds: [],
  sampling: GREEDY,
});

/** Nothing running or queued, every KV block free (prefix-cache pages count as free). */
export function expectAllFree(st: NativeModelStats): void {
  expect(st.kvFreeBlocks).toBe(st.kvBlocks);
  expect(st.runningRequests).toBe(0);
  expect(st.queuedRequests).toBe(0);
  expect(st.runningSequences).toBe(0);
}

export interface TestingHooks {
  armFault(model: NativeModel, plan: string, device?: number): void;
  armNextLoad(plan: string): void;
  faultsFired(model: NativeModel, device?: number): number;
  releaseCache(model: NativeModel): void;
  hold(model: NativeModel, iterations: number): void;
  /** Matmul shapes the device's backend has picked kernels for (CUDA; 0 on the CPU backend). */
  matmulShapesPlanned(model: NativeModel, device?: number): number;
  held(model: NativeModel): boolean;
}

export function testingHooks(): TestingHooks {
  return (loadNative() as unknown as { __testing: TestingHooks }).__testing;
}

/** The native object under an EngineModel (its private field). */
export function nativeOf(model: EngineModel): NativeModel {
  const n = (model as unknown as { native: NativeModel | undefined }).native;
  if (!n) throw new Error('the model has been disposed');
  return n;
}

/**
 * Resolves once cond() holds, polling. The bound only turns a hang into a clear failure;
 * nothing depends on how soon the condition comes true.
 */
export async function waitUntil(cond: () => boolean, what: string, limitMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > limitMs) throw new Error(`still waiting after ${limitMs} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/**
 * Lets the engine of `model` run `iterations` loop iterations and waits until it sits
 * holding again (with work left), so a test knows exactly which steps have run.
 */
export async function stepEngine(model: EngineModel, iterations: number): Promise<void> {
  const t = testingHooks();
  const n = nativeOf(model);
  t.hold(n, iterations);
  await waitUntil(() => t.held(n), `the engine to run ${iterations} iteration(s) and hold`);
}
