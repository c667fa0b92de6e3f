/**
 * Out of memory during a batch (#11), on the CPU backend so that CI runs the scheduler's
 * recovery: the allocation hook (native/runtime/fault_injection.h, armed through the addon's
 * __testing hooks) fails one allocation with ERR_OOM at a point the test chooses, and
 *   - a step several requests share sheds only the newest of them (ERR_OOM); the others are
 *     rolled back to where the step found them and run again: their tokens are exactly the
 *     PyTorch goldens (the CPU engine's tokens do not depend on what runs beside them);
 *   - a prefill step of one request (the one that needed the memory) fails only that request,
 *     while a request already decoding goes on;
 *   - every KV block comes back, and the model serves the goldens afterwards.
 * The engine's hold hook fixes which requests share a step, so nothing depends on timing.
 * The same scenarios on the GPU, with device memory checked, are test/gpu/faults.test.ts.
 */
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { expectAllFree, goldenRequest as goldenRequestFor, longRequest, nativeOf, stepEngine, testingHooks } from '../helpers/faultHooks.js';
import { type GoldenSample, fixturesDir, readModelGolden } from '../helpers/goldens.js';

const golden = readModelGolden('tiny-qwen2');
const imageContextTokenId = (golden as unknown as { image_context_token_id: number }).image_context_token_id;
const goldenRequest = (s: GoldenSample) => goldenRequestFor(s, golden.eos_token_id);
const sample = (name: string) => golden.cases.find((c) => c.name === name) as GoldenSample;
const older = sample('image'); // A: its tokens are checked against the goldens
const newer = sample('text'); // B: admitted after A, the one that gives way

describe('out of memory during a batch (CPU backend, injected)', () => {
  const T = testingHooks();
  let model: EngineModel;

  beforeAll(async () => {
    model = await EngineModel.load(join(fixturesDir, golden.model_dir), { imageContextTokenId, threads: 2, kvCacheTokens: 2048, prefixCache: false });
  });
  afterAll(() => model?.dispose());
  afterEach(() => {
    if (model && !model.disposed) {
      T.armFault(nativeOf(model), 'none');
      T.hold(nativeOf(model), -1);
    }
  });

  /** With the engine held: the golden request A, then B, which outlives it; B's outcome (its error, or 'resolved'). */
  function heldPair(n: ReturnType<typeof nativeOf>) {
    T.hold(n, 0);
    const a = model.generate(goldenRequest(older));
    const b = model.generate(longRequest(newer));
    const bOutcome = b.promise.then(
      () => 'resolved',
      (e: unknown) => e,
    );
    return { a, bOutcome };
  }

  test('a decode step of two requests: the newer fails with ERR_OOM, the older finishes with the golden tokens', async () => {
    const n = nativeOf(model);
    const fired = T.faultsFired(n);
    const { a, bOutcome } = heldPair(n);
    // one iteration: both admitted, prefilled together, one decode step together
    await stepEngine(model, 1);
    const st = model.stats();
    expect(st.runningRequests).toBe(2);
    expect(st.runningSequences).toBe(2);
    // the next allocation is the next decode step's (nothing else is left to run)
    T.armFault(n, 'oom-after=0');
    T.hold(n, -1);
    const [ra] = await a.promise;
    expect(Array.from(ra.tokenIds)).toEqual(older.generated_ids);
    expect(await bOutcome).toMatchObject({ code: 'ERR_OOM', message: expect.stringContaining('injected by the fault hook') });
    expect(T.faultsFired(n)).toBe(fired + 1);
    expectAllFree(model.stats());
  });

  test('a prefill step of a newly arrived request: it fails with ERR_OOM, the decoding one goes on', async () => {
    const n = nativeOf(model);
    T.hold(n, 0);
    const a = model.generate(goldenRequest(older));
    await stepEngine(model, 1); // A prefilled and decoding
    const b = model.generate(longRequest(newer));
    T.armFault(n, 'oom-after=0'); // B's prefill allocates first in the next iteration
    T.hold(n, -1);
    await expect(b.promise).rejects.toMatchObject({ code: 'ERR_OOM' });
    const [ra] = await a.promise;
    expect(Array.from(ra.tokenIds)).toEqual(older.generated_ids);
    expectAllFree(model.stats());
  });

  // The fault lands at a different point each time: in A's ViT, the shared prefill forward
  // (after its KV slots were claimed), or a shared decode step. Whatever the point, A comes
  // through with the golden tokens and B (in every step A is in) fails alone.
  test.each([0, 3, 25, 120, 400, 1500])('a fault after %i allocations of a shared run: only the newer fails', async (after) => {
    const n = nativeOf(model);
    const fired = T.faultsFired(n);
    const { a, bOutcome } = heldPair(n);
    T.armFault(n, `oom-after=${after}`);
    T.hold(n, -1);
    const [ra] = await a.promise;
    expect(Array.from(ra.tokenIds)).toEqual(older.generated_ids);
    expect(await bOutcome).toMatchObject({ code: 'ERR_OOM' });
    expect(T.faultsFired(n)).toBe(fired + 1);
    expectAllFree(model.stats());
  });

  test('after the faults the model still serves the goldens, both requests together', async () => {
    const [ra, rb] = await Promise.all([model.generate(goldenRequest(older)).promise, model.generate(goldenRequest(newer)).promise]);
    expect(Array.from(ra[0].tokenIds)).toEqual(older.generated_ids);
    expect(Array.from(rb[0].tokenIds)).toEqual(newer.generated_ids);
    expectAllFree(model.stats());
  });

  test('the hooks refuse bad plans and non-models with ERR_INVALID_ARG', () => {
    const n = nativeOf(model);
    expect(() => T.armFault(n, 'oom-after=x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('not a fault plan') }));
    expect(() => T.armFault(n, 'explode')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    expect(() => T.armFault(n, 'error-after=0')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('CUDA only') }));
    expect(() => T.armFault(n, 'oom-after=0', 3)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('no fault injector') }));
    expect(() => T.armFault({} as never, 'oom-after=0')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
  });
});
