#!/usr/bin/env node
// One phase of the engine at real shapes with random weights, small enough to run under
// Nsight Compute (ncu --print-summary per-kernel) and see where a phase's time goes:
//   vit     13 tiles through ViT + projector (device time, embeddings left on the GPU)
//   decode  --batch sequences of 1 tile + 30 tokens, --steps decode steps
// Prints one JSON line with the phase's wall-clock figures. Examples (GPU machine):
//   node bench/profile.mjs --config bench/configs/InternVL2-8B.json --phase vit
//   ncu --cache-control none --clock-control none --metrics gpu__time_duration.sum \
//       --print-summary per-kernel node bench/profile.mjs --config ... --phase decode --steps 4
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readModelConfig } from '../dist/config.js';
import { EngineModel } from '../dist/engine/nativeModel.js';
import { arg } from './args.mjs';
import { GREEDY, randomInputs } from './inputs.mjs';

const path = arg('--config', [])[0];
const phase = arg('--phase', ['decode'])[0];
const dtype = arg('--dtype', ['bf16'])[0];
const batch = Number(arg('--batch', ['1'])[0]);
const steps = Number(arg('--steps', ['4'])[0]);
const reps = Number(arg('--reps', ['1'])[0]);

const dir = mkdtempSync(join(tmpdir(), 'ivl-profile-'));
copyFileSync(path, join(dir, 'config.json'));
const config = await readModelConfig(dir);
const cfg = JSON.parse(readFileSync(path, 'utf8'));
const vocab = cfg.llm_config.vocab_size;
const imageToken = vocab - 1;
const S = config.forceImageSize, T = config.numImageToken;
const kvCacheTokens = Math.max(16384, batch * (T + 30 + steps + 32));
// No prefix cache unless --prefix-cache: the timed run must prefill what the 1-token run did
// (step_ms subtracts it); with it, the emit figure shows what finished sequences cost.
const prefixCache = process.argv.includes('--prefix-cache');
// --no-mixed-steps: prefill and decode in separate forwards (the engine's default on CUDA mixes
// them), for A/Bs of the batched decode figure, whose prefill the timed run repeats.
const mixedSteps = process.argv.includes('--no-mixed-steps') ? { mixedSteps: false } : {};
const engine = await EngineModel.load(dir, { backend: 'cuda', imageContextTokenId: imageToken, config, dummyWeights: true, kvCacheTokens, dtype, prefixCache, ...mixedSteps });

const { pixels, ids } = randomInputs({ S, T, vocab, imageToken, seed: 7 });
const greedy = GREEDY;
// --sample: every row sampled on the host (temperature + top-p + a repetition penalty)
const sampled = { doSample: true, temperature: 0.8, topK: 0, topP: 0.9, repetitionPenalty: 1.05, seed: 1 };
const sampling = process.argv.includes('--sample') ? sampled : greedy;
const gen = (seqs, n) => engine.generate({ sequences: seqs, maxNewTokens: n, eosTokenIds: [], sampling }).promise;

const out = { config: path, phase, dtype, batch, sampling: sampling.doSample ? 'top-p' : 'greedy', mixed_steps: mixedSteps.mixedSteps ?? 'default' };
if (phase === 'vit') {
  const t = await engine.timeEncode(pixels(13), 13, reps);
  out.encode_s = t.encodeSeconds;
  out.upload_s = t.uploadSeconds;
} else {
  const seqs = Array.from({ length: batch }, () => ({ inputIds: ids(1, 30), pixelValues: pixels(1), tiles: 1 }));
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await gen(seqs, 1);
    const t1 = performance.now();
    await gen(seqs, 1 + steps);
    const t2 = performance.now();
    out.prefill_ms = t1 - t0;
    out.step_ms = (t2 - t1 - (t1 - t0)) / steps;
  }
  out.stats = engine.stats();
  // host wall time per decode step: engine call (device work waited for), host sampler, token delivery
  const st = out.stats;
  out.per_step_ms = { forward: st.decodeForwardMs / st.decodeSteps, sample: st.decodeSampleMs / st.decodeSteps, emit: st.decodeEmitMs / st.decodeSteps };
}
console.log(JSON.stringify(out));
engine.dispose();
