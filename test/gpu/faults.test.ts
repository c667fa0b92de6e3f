/**
 * Faults on the GPU (#11; GPU machine only, skipped with the reason elsewhere):
 *   (a) out of memory at load: a KV cache larger than the GPU fails the load with ERR_OOM
 *       naming the sizes, the process goes on, the device's free memory returns to what it
 *       was before the load, and the next load works; likewise a load failed part way
 *       through its weights (the hooks' armNextLoad('oom-after=N'));
 *   (b) out of memory during a batch (the allocator's fault hook, armed per model): the
 *       request that needed the memory fails with ERR_OOM, the others finish with correct
 *       tokens, and in-use device memory returns to the post-load figure;
 *   (c) a CUDA error (the hook's 'error-after=N', handled as a sticky error: the backend is
 *       poisoned, the real context is not) fails that model's requests with ERR_CUDA and every
 *       later call on it with "unusable after an earlier CUDA error", while a second model in
 *       the same process keeps answering correctly;
 *   (d) after a burst of 48 concurrent requests with cancellations, in-use device memory equals
 *       the post-load figure (the cache and the grow-only workspaces released first).
 * Correct tokens: the greedy choice of every generated token is checked against the fp32 CPU
 * engine (the oracle) by teacher forcing: the CPU's logits after the same prefix put the chosen
 * token within BF16_TOL·max|logit| of their maximum (bf16 flips near-ties of the flat random
 * fixtures; a corrupted KV cache or a wrong position does not stay that close). The same
 * scheduler paths run on the CPU backend in CI (test/faults/oom.test.ts), with exact goldens.
 * Which requests share a step is fixed with the engine's hold hook: nothing depends on timing.
 * Run this file alone (or the GPU suite with --runInBand): (a) claims most of the GPU for a
 * moment and compares the device's free memory, which other processes on the GPU would move.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineModel } from '../../lib/engine/nativeModel.js';
import { runtimeInfo } from '../../lib/native.js';
import type { NativeDeviceMemory, NativeSampling } from '../../lib/nativeTypes.js';
import { GREEDY, expectAllFree, goldenRequest as goldenRequestFor, longRequest, nativeOf, stepEngine, testingHooks } from '../helpers/faultHooks.js';
import { type GoldenSample, fixturesDir, goldenSamples, goldenSequence, readModelGolden } from '../helpers/goldens.js';
import { cudaSkipReason } from '../helpers/gpu.js';
import { BF16_GREEDY_TOL, greedyGapUnderOracle } from '../helpers/oracle.js';

const reason = cudaSkipReason();
const golden = readModelGolden('tiny-qwen2');
const tinyDir = join(fixturesDir, golden.model_dir);
const imageContextTokenId = (golden as unknown as { image_context_token_id: number }).image_context_token_id;
const goldenRequest = (s: GoldenSample) => goldenRequestFor(s, golden.eos_token_id);
const sample = (name: string) => golden.cases.find((c) => c.name === name) as GoldenSample;
const older = sample('image');
const newer = sample('text');

const MiB = 1 << 20;
const freeMemory = () => runtimeInfo().cuda.devices[0].freeMemory;
const dev0 = (m: EngineModel): NativeDeviceMemory => m.stats().deviceMemory[0];

/** The post-load figure: in use right after load (cache released, nothing cached). */
function postLoad(m: EngineModel): NativeDeviceMemory {
  testingHooks().releaseCache(nativeOf(m));
  const d = dev0(m);
  expect(d.cachedBytes).toBe(0);
  return d;
}
function expectBackToPostLoad(m: EngineModel, after: NativeDeviceMemory): void {
  expectAllFree(m.stats());
  testingHooks().releaseCache(nativeOf(m));
  const d = dev0(m);
  expect(d.cachedBytes).toBe(0);
  expect(d.inUseBytes).toBe(after.inUseBytes);
  expect(d.weightBytes).toBe(after.weightBytes);
}

/** A Qwen2-style config whose weights are about 400 MB of bf16 (random: dummyWeights). */
function bigConfig(): Record<string, unknown> {
  return {
    architectures: ['InternVLChatModel'],
    model_type: 'internvl_chat',
    template: 'Hermes-2',
    downsample_ratio: 0.5,
    force_image_size: 224,
    ps_version: 'v2',
    select_layer: -1,
    vision_config: {
      hidden_size: 128,
      intermediate_size: 512,
      num_attention_heads: 4,
      num_hidden_layers: 2,
      image_size: 224,
      patch_size: 14,
      norm_type: 'layer_norm',
      qkv_bias: true,
      qk_normalization: false,
    },
    llm_config: {
      architectures: ['Qwen2ForCausalLM'],
      hidden_size: 1024,
      intermediate_size: 2816,
      num_hidden_layers: 12,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      vocab_size: 32000,
      max_position_embeddings: 8192,
    },
  };
}
// 12 layers × (K, V) × 2 kv heads × 128 × 2 bytes = 12 KiB per token: 2^24 tokens need 192 GiB,
// more than any single GPU here has; each layer's K is 8 GiB, so the load fails after claiming
// most of the device, all of which must come back.
const HUGE_KV_TOKENS = 1 << 24;

if (reason) {
  test(`GPU fault suite skipped: ${reason}`, () => {
    expect(reason.length).toBeGreaterThan(0);
  });
} else {
  describe('faults on the GPU', () => {
    const T = testingHooks();
    let cpu: EngineModel; // the oracle
    let bigDir: string;

    /** Every token of `tokens` is the greedy choice after its prefix, by the fp32 CPU engine, up to bf16 near-ties. */
    async function expectGreedyUnderOracle(s: GoldenSample, tokens: number[]): Promise<void> {
      expect(tokens.length).toBeGreaterThan(0);
      expect(await greedyGapUnderOracle(cpu, s, tokens)).toBeLessThan(BF16_GREEDY_TOL);
    }

    const loadTiny = (more: { mixedSteps?: boolean } = {}) =>
      EngineModel.load(tinyDir, { backend: 'cuda', imageContextTokenId, prefixCache: false, kvCacheTokens: 8192, ...more });
    const loadHuge = () =>
      EngineModel.load(bigDir, { backend: 'cuda', imageContextTokenId: 500, dummyWeights: true, kvCacheTokens: HUGE_KV_TOKENS });

    beforeAll(async () => {
      cpu = await EngineModel.load(tinyDir, { imageContextTokenId, prefixCache: false });
      bigDir = mkdtempSync(join(tmpdir(), 'ivl-gpu-faults-'));
      writeFileSync(join(bigDir, 'config.json'), JSON.stringify(bigConfig()));
    });
    afterAll(() => {
      cpu?.dispose();
      if (bigDir) rmSync(bigDir, { recursive: true, force: true });
    });

    test('(a) a KV cache larger than the GPU: ERR_OOM with the sizes, free memory back to the pre-load level, the next load works', async () => {
      // First use of the kernels, cuBLASLt and the load path is not what is measured: one failed load first.
      await expect(loadHuge()).rejects.toMatchObject({ code: 'ERR_OOM' });
      const before = freeMemory();
      const err = await loadHuge().then(
        () => undefined,
        (e: unknown) => e as Error & { code: string },
      );
      expect(err).toBeDefined();
      expect(err!.code).toBe('ERR_OOM');
      // "CUDA device 0 is out of memory: 8.00 GiB requested, X free of Y (this backend holds Z, W of it weights)"
      expect(err!.message).toMatch(/out of memory: [\d.]+ GiB requested, [\d.]+ \w+ free of [\d.]+ GiB \(this backend holds [\d.]+ GiB/);
      const after = freeMemory();
      console.log(`load OOM: free before ${(before / MiB).toFixed(0)} MiB, after ${(after / MiB).toFixed(0)} MiB; ${err!.message.split('\n')[0]}`);
      // what the failed load held: 400 MB of weights and about 130 GiB of KV; driver bookkeeping is a few MiB
      expect(Math.abs(before - after)).toBeLessThan(32 * MiB);

      await using m = await loadTiny();
      const [r] = await m.generate(goldenRequest(newer)).promise;
      await expectGreedyUnderOracle(newer, Array.from(r.tokenIds));
    });

    test('(a) a load failed part way through its weights (armNextLoad oom-after=N): ERR_OOM, memory back, the next load works', async () => {
      const before = freeMemory();
      for (const after of [0, 7, 20]) {
        // not process.env.INTERNVL_CUDA_FAULT: jest's process.env is a copy getenv never sees
        T.armNextLoad(`oom-after=${after}`);
        try {
          await expect(loadTiny()).rejects.toMatchObject({ code: 'ERR_OOM', message: expect.stringContaining('injected by the fault hook') });
        } finally {
          T.armNextLoad('none');
        }
        expect(Math.abs(before - freeMemory())).toBeLessThan(32 * MiB);
      }
      await using m = await loadTiny();
      const [r] = await m.generate(goldenRequest(older)).promise;
      await expectGreedyUnderOracle(older, Array.from(r.tokenIds));
    });

    test('(b) a decode step of two requests runs out of memory: the newer fails with ERR_OOM, the older finishes correctly, memory back to post-load', async () => {
      await using m = await loadTiny();
      const n = nativeOf(m);
      const base = postLoad(m);
      T.hold(n, 0);
      const a = m.generate(goldenRequest(older));
      const b = m.generate(longRequest(newer));
      const bOutcome = b.promise.then(
        () => 'resolved',
        (e: unknown) => e,
      );
      await stepEngine(m, 1); // both admitted, prefilled together, one decode step together
      expect(m.stats().runningSequences).toBe(2);
      T.armFault(n, 'oom-after=0'); // the next allocation is the next decode step's
      T.hold(n, -1);
      const [ra] = await a.promise;
      expect(await bOutcome).toMatchObject({ code: 'ERR_OOM', message: expect.stringContaining('injected by the fault hook') });
      expect(T.faultsFired(n)).toBe(1);
      await expectGreedyUnderOracle(older, Array.from(ra.tokenIds));
      expectBackToPostLoad(m, base);
    });

    test('(b) faults at other points of a shared run (ViT, prefill, decode): only the newer request fails, memory back to post-load', async () => {
      await using m = await loadTiny();
      const n = nativeOf(m);
      const base = postLoad(m);
      for (const after of [0, 5, 30, 150]) {
        const fired = T.faultsFired(n);
        T.hold(n, 0);
        const a = m.generate(goldenRequest(older));
        const b = m.generate(longRequest(newer));
        const bOutcome = b.promise.then(
          () => 'resolved',
          (e: unknown) => e,
        );
        T.armFault(n, `oom-after=${after}`);
        T.hold(n, -1);
        const [ra] = await a.promise;
        expect(await bOutcome).toMatchObject({ code: 'ERR_OOM' });
        expect(T.faultsFired(n)).toBe(fired + 1);
        await expectGreedyUnderOracle(older, Array.from(ra.tokenIds));
        expectBackToPostLoad(m, base);
      }
    });

    // Mixed steps (on by default on CUDA) would put B's prefill in one step with A's decode; this
    // is the path where the two run apart.
    test('(b) the prefill of a newly arrived request runs out of memory: it fails with ERR_OOM, the decoding one goes on', async () => {
      await using m = await loadTiny({ mixedSteps: false });
      const n = nativeOf(m);
      const base = postLoad(m);
      T.hold(n, 0);
      const a = m.generate(goldenRequest(older));
      await stepEngine(m, 1);
      const b = m.generate(longRequest(newer));
      T.armFault(n, 'oom-after=0');
      T.hold(n, -1);
      await expect(b.promise).rejects.toMatchObject({ code: 'ERR_OOM' });
      const [ra] = await a.promise;
      await expectGreedyUnderOracle(older, Array.from(ra.tokenIds));
      expectBackToPostLoad(m, base);
    });

    // A fault plan fires once (a transient shortage): the mixed step is undone and its two halves
    // run apart, where the allocation succeeds, so nobody fails.
    test('(b) a mixed step (the newcomer\'s prefill + the decode) runs out of memory: undone, run apart, both finish correctly', async () => {
      await using m = await loadTiny();
      const n = nativeOf(m);
      const base = postLoad(m);
      T.hold(n, 0);
      const a = m.generate(goldenRequest(older));
      await stepEngine(m, 1);
      const b = m.generate(goldenRequest(newer));
      const st0 = m.stats();
      const fired = T.faultsFired(n);
      T.armFault(n, 'oom-after=0');
      await stepEngine(m, 1);
      expect(T.faultsFired(n)).toBe(fired + 1);
      expect(m.stats().mixedSteps).toBe(st0.mixedSteps); // the failed one is not counted
      T.hold(n, -1);
      const [[ra], [rb]] = await Promise.all([a.promise, b.promise]);
      await expectGreedyUnderOracle(older, Array.from(ra.tokenIds));
      await expectGreedyUnderOracle(newer, Array.from(rb.tokenIds));
      expectBackToPostLoad(m, base);
    });

    test('(c) a CUDA error poisons only that model: its requests fail with ERR_CUDA, later calls fail at once, a second model keeps answering', async () => {
      await using poisoned = await loadTiny();
      await using healthy = await loadTiny();
      const n = nativeOf(poisoned);
      const healthyBase = postLoad(healthy);
      // the healthy model is generating while the other one fails
      const running = healthy.generate(goldenRequest(older));
      T.hold(n, 0);
      // two requests in the step that fails: both end with the error
      const victims = [poisoned.generate(goldenRequest(newer)), poisoned.generate(goldenRequest(older))];
      T.armFault(n, 'error-after=3');
      T.hold(n, -1);
      for (const v of victims) {
        await expect(v.promise).rejects.toMatchObject({ code: 'ERR_CUDA', message: expect.stringContaining('injected by the fault hook') });
      }
      expectAllFree(poisoned.stats());
      const unusable = { code: 'ERR_CUDA', message: expect.stringContaining('unusable after an earlier CUDA error') };
      await expect(poisoned.generate(goldenRequest(newer)).promise).rejects.toMatchObject(unusable);
      await expect(poisoned.encodeImages(goldenSequence(older).pixelValues as Float32Array, goldenSequence(older).tiles as number)).rejects.toMatchObject(unusable);
      expectAllFree(poisoned.stats());

      const [r1] = await running.promise;
      await expectGreedyUnderOracle(older, Array.from(r1.tokenIds));
      const [r2] = await healthy.generate(goldenRequest(newer)).promise;
      await expectGreedyUnderOracle(newer, Array.from(r2.tokenIds));
      expectBackToPostLoad(healthy, healthyBase);
      poisoned.dispose(); // disposing a poisoned model is clean too
      expect(poisoned.disposed).toBe(true);
    });

    test('(d) a burst of 48 concurrent requests with cancellations: in-use device memory back to the post-load figure', async () => {
      await using m = await loadTiny();
      const base = postLoad(m);
      const samples = goldenSamples(golden);
      // a fixed pseudo-random plan (mulberry32): which requests are cancelled and how
      let seed = 0x11b0057;
      const rand = () => {
        seed = (seed + 0x6d2b79f5) | 0;
        let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      };
      // all 48 queued before the engine looks: the first iterations admit as many as the KV cache takes
      testingHooks().hold(nativeOf(m), 0);
      const runs = Array.from({ length: 48 }, (_, i) => {
        const s = samples[i % samples.length];
        const maxNewTokens = 1 + Math.floor(rand() * 24);
        const sampling: NativeSampling = rand() < 0.3 ? { doSample: true, temperature: 0.8, topK: 20, topP: 0.9, repetitionPenalty: 1.1, seed: i } : GREEDY;
        const how = rand(); // < 0.15: aborted before submit; < 0.3: cancelled at once (queued); < 0.5: after k tokens
        const k = 1 + Math.floor(rand() * 4);
        const controller = new AbortController();
        if (how < 0.15) controller.abort();
        let seen = 0;
        const gen = m.generate(
          { sequences: [goldenSequence(s)], maxNewTokens, eosTokenIds: [golden.eos_token_id], sampling },
          {
            signal: controller.signal,
            onToken: () => {
              seen++;
              if (how >= 0.3 && how < 0.5 && seen === k) controller.abort();
            },
          },
        );
        if (how >= 0.15 && how < 0.3) gen.cancel();
        return { gen, maxNewTokens, cancelled: how < 0.5 };
      });
      testingHooks().hold(nativeOf(m), -1);
      const results = await Promise.all(runs.map((r) => r.gen.promise));
      let aborted = 0;
      results.forEach(([res], i) => {
        expect(res.tokenIds.length).toBeLessThanOrEqual(runs[i].maxNewTokens);
        if (res.finishReason === 'aborted') {
          expect(runs[i].cancelled).toBe(true);
          aborted++;
        } else {
          expect(['eos', 'length']).toContain(res.finishReason);
          expect(res.tokenIds.length).toBeGreaterThan(0);
        }
      });
      expect(aborted).toBeGreaterThan(0);
      const st = m.stats();
      expect(st.maxBatchRequests).toBeGreaterThan(1);
      expect(st.completedRequests).toBe(48);
      expect(dev0(m).peakBytes).toBeGreaterThan(base.inUseBytes);
      console.log(`burst: ${aborted} of 48 aborted, largest decode batch ${st.maxBatchSequences}; in use after load ${(base.inUseBytes / MiB).toFixed(1)} MiB, peak ${(dev0(m).peakBytes / MiB).toFixed(1)} MiB`);
      expectBackToPostLoad(m, base);
    });
  });
}
