/**
 * A short soak (#11; the 1,000-request run is test/soak/soak.mjs, by hand): 150 mixed
 * requests with random cancellations on the tiny fixture. Every failure is a typed
 * InternVLError the request could produce (runMix throws otherwise), every KV block is
 * free at the end, and neither the V8 heap nor the open handles grow past the warmed-up
 * level.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { EngineModel } from '../../lib/engine/nativeModel.js';
import { InternVL } from '../../lib/model.js';
import { fixturesDir } from '../helpers/goldens.js';
// @ts-expect-error: a plain .mjs module shared with the soak script, no types
import { handles, runMix } from '../soak/mix.mjs';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function heap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const total = (h: Record<string, number>) => Object.values(h).reduce((a, b) => a + b, 0);

test('150 mixed requests, a third cancelled: typed outcomes, all blocks free, no growth', async () => {
  const model = await InternVL.load(join(fixturesDir, 'models', 'tiny-internlm2'), { backend: 'cpu', threads: 1 });
  try {
    const images = [readFileSync(join(fixturesDir, 'images', 'wide.jpg')), readFileSync(join(fixturesDir, 'images', 'tall.png'))];
    await runMix(model, { n: 40, seed: 99, concurrency: 4, images });
    const heapBefore = await heap();
    const handlesBefore = handles();
    const counts = await runMix(model, { n: 150, seed: 5, concurrency: 4, images });
    const heapAfter = await heap();
    // timers of the last cancellations (abort timeouts) may still be pending for a moment on a
    // loaded machine: a leak stays, a pending timer goes
    let handlesAfter = handles();
    for (let i = 0; i < 40 && total(handlesAfter) > total(handlesBefore); i++) {
      await new Promise((r) => setTimeout(r, 50));
      handlesAfter = handles();
    }
    // the mix reached every outcome
    expect(counts.ok).toBeGreaterThan(50);
    expect(counts.byCode['abort-reason'] + counts.aborted + counts.cancelledEarly).toBeGreaterThan(20);
    for (const code of ['ERR_INVALID_ARG', 'ERR_IMAGE', 'ERR_CONTEXT_OVERFLOW']) expect(counts.byCode[code]).toBeGreaterThan(0);
    const st = (model as unknown as { engine: EngineModel }).engine.stats();
    expect(st.kvFreeBlocks).toBe(st.kvBlocks);
    expect(st.runningRequests + st.queuedRequests + st.runningSequences).toBe(0);
    expect(heapAfter - heapBefore).toBeLessThan(8 << 20);
    expect(total(handlesAfter)).toBeLessThanOrEqual(total(handlesBefore));
  } finally {
    model.dispose();
  }
});
