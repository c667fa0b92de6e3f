#!/usr/bin/env node
// Our engine at real InternVL2 shapes with random weights (--dummy-weights: no
// checkpoint files), the same workloads as bench/baseline_transformers.py:
// ViT over 13 tiles, prefill of 1850 text tokens, time to first token for 1 and 13
// tiles + 30 text tokens, decode at batch 1/8/32/128 (1 tile + 30 tokens each), for each
// weight dtype asked (bf16, int8 = W8A16 per channel), with the allocator's device memory
// (weights after load, true peak over the run).
//   node bench/run.mjs --configs bench/configs/InternVL2-8B.json ... --backend cuda --dtypes bf16 int8 --out FILE
import { mkdtempSync, copyFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readModelConfig } from '../dist/config.js';
import { EngineModel } from '../dist/engine/nativeModel.js';
import { runtimeInfo } from '../dist/native.js';
import { arg } from './args.mjs';
import { GREEDY, randomInputs } from './inputs.mjs';

const configs = arg('--configs', []);
const backend = (arg('--backend', ['cuda']))[0];
const out = (arg('--out', [`bench/results/ours-${new Date().toISOString().slice(0, 10)}.json`]))[0];
const reps = Number((arg('--reps', ['3']))[0]);
const decodeTokens = Number((arg('--decode-tokens', ['128']))[0]);
const batches = (arg('--batches', ['8', '32', '128'])).map(Number);
const dtypes = arg('--dtypes', ['bf16', 'int8']);
// --device-map auto|card|JSON: split the model over the GPUs (issue #10)
const deviceMapArg = (arg('--device-map', []))[0];
const deviceMap = deviceMapArg === undefined ? undefined : deviceMapArg.startsWith('[') || deviceMapArg.startsWith('{') ? JSON.parse(deviceMapArg) : deviceMapArg;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function timed(fn, n = reps, warmup = 1) {
  for (let i = 0; i < warmup; i++) await fn();
  const ts = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    ts.push((performance.now() - t) / 1000);
  }
  return { median_s: median(ts), min_s: Math.min(...ts), max_s: Math.max(...ts), reps: n };
}

function vitFlopsPerTile(cfg) {
  const v = cfg.vision_config;
  const c = v.hidden_size, n = (cfg.force_image_size / v.patch_size) ** 2 + 1, f = v.intermediate_size;
  const perLayer = 2 * n * (3 * c * c + c * c + 2 * c * f) + 4 * n * n * c;
  const h = cfg.llm_config.hidden_size;
  const proj = ((2 * (n - 1)) / 4) * (4 * c * h + h * h);
  return v.num_hidden_layers * perLayer + 2 * (n - 1) * 3 * v.patch_size ** 2 * c + proj;
}

// Multiply-adds ×2 of a prefill of T tokens through the decoder: every linear layer, causal
// attention (half the T² score matrix, QKᵀ and PV), and the head for the last token.
function llmPrefillFlops(cfg, T) {
  const l = cfg.llm_config;
  const H = l.hidden_size, Hq = l.num_attention_heads, KV = l.num_key_value_heads ?? Hq, D = l.head_dim ?? H / Hq, F = l.intermediate_size;
  const linear = H * (Hq + 2 * KV) * D + Hq * D * H + 3 * H * F;
  return l.num_hidden_layers * (2 * T * linear + 2 * T * T * Hq * D) + 2 * l.vocab_size * H;
}


// Bytes a batch-1 decode step reads: every decoder linear (int8: 1 byte + a fp32 scale per
// output row), the LM head (bf16 unless quantized), the norms, and the KV of one token per
// layer is negligible next to them; the KV read grows with context (counted separately).
function decodeWeightBytes(cfg, dtype) {
  const l = cfg.llm_config;
  const H = l.hidden_size, D = l.head_dim ?? H / l.num_attention_heads, Hq = l.num_attention_heads, KV = l.num_key_value_heads ?? Hq, F = l.intermediate_size;
  const rows = (Hq + 2 * KV) * D + H + 2 * F + H; // output rows of qkv, o, gate/up, down
  const linear = l.num_hidden_layers * (H * (Hq + 2 * KV) * D + Hq * D * H + 3 * H * F);
  const head = l.vocab_size * H * 2;
  const norms = (2 * l.num_hidden_layers + 1) * H * 4;
  return (dtype === 'int8' ? linear + l.num_hidden_layers * rows * 4 : 2 * linear) + head + norms;
}

async function benchModel(path, dtype) {
  const dir = mkdtempSync(join(tmpdir(), 'ivl-bench-'));
  copyFileSync(path, join(dir, 'config.json'));
  const config = await readModelConfig(dir);
  const raw = (await import('node:fs')).readFileSync(path, 'utf8');
  const cfg = JSON.parse(raw);
  const vocab = cfg.llm_config.vocab_size;
  const imageToken = vocab - 1;
  const S = config.forceImageSize, T = config.numImageToken;
  const maxBatch = Math.max(1, ...batches);
  const promptLen = T + 30;
  const kvCacheTokens = Math.max(16384, maxBatch * (promptLen + decodeTokens + 32), 13 * T + 64);
  const free0 = runtimeInfo().cuda.devices[0]?.freeMemory ?? 0;
  const t0 = performance.now();
  // No prefix cache: each timed call must prefill its prompts as the 1-token call before it did
  // (decode = the difference; with the cache, the second call's prompts hit and decode_batch128
  // came out negative), and transformers' generate has none either.
  const engine = await EngineModel.load(dir, { backend, imageContextTokenId: imageToken, config, dummyWeights: true, kvCacheTokens, dtype, prefixCache: false, ...(deviceMap ? { deviceMap } : {}) });
  const loadS = (performance.now() - t0) / 1000;
  const free1 = runtimeInfo().cuda.devices[0]?.freeMemory ?? 0;
  const mem0 = engine.stats().deviceMemory[0];
  const res = {
    config: path, backend, dtype, device_map: engine.devicePlan?.map, devices: engine.stats().deviceMemory.length, load_dummy_s: loadS, device_bytes_after_load: free0 - free1, kv_cache_tokens: kvCacheTokens,
    weight_bytes: mem0?.weightBytes, load_peak_bytes: mem0?.peakBytes, decode_weight_bytes_per_token: decodeWeightBytes(cfg, dtype),
  };
  const { pixels, ids } = randomInputs({ S, T, vocab, imageToken, seed: 1 });
  const greedy = GREEDY;
  const gen = (seqs, n) => engine.generate({ sequences: seqs, maxNewTokens: n, eosTokenIds: [], sampling: greedy }).promise;

  const px13 = pixels(13);
  // The device's work (pixel upload + ViT + projector, embeddings left on the GPU) is what
  // transformers' get_image_features is timed on; the round trip through JS (fp32 download of
  // tiles·256·hidden values and the typed-array copies: ~25 ms at 8B) is reported apart.
  const te = await engine.timeEncode(px13, 13, reps + 1);
  const enc = te.encodeSeconds.slice(1).sort((a, b) => a - b);
  const vit = { median_s: enc[Math.floor(enc.length / 2)], min_s: enc[0], max_s: enc.at(-1), reps: enc.length, pixel_upload_s: te.uploadSeconds.slice(1).sort((a, b) => a - b)[Math.floor(enc.length / 2)] };
  res.vit_13_tiles = { ...vit, tiles_per_s: 13 / vit.median_s, tflops: (13 * vitFlopsPerTile(cfg)) / vit.median_s / 1e12 };
  const host = await timed(() => engine.encodeImages(px13, 13));
  res.vit_13_tiles_js_roundtrip = { ...host, tiles_per_s: 13 / host.median_s };
  const textIds = ids(0, 1850);
  const pre = await timed(() => gen([{ inputIds: textIds }], 1));
  res.prefill_1850 = { ...pre, tokens_per_s: 1850 / pre.median_s };
  for (const tiles of [1, 13]) {
    const seq = { inputIds: ids(tiles, 30), pixelValues: tiles === 13 ? px13 : pixels(1), tiles };
    res[`ttft_${tiles}_tiles`] = await timed(() => gen([seq], 1));
    // the bf16 work of the request: ViT + projector per tile, then the whole prompt's prefill
    res[`ttft_${tiles}_tiles`].flop = tiles * vitFlopsPerTile(cfg) + llmPrefillFlops(cfg, tiles * T + 30);
  }
  const one = { inputIds: ids(1, 30), pixelValues: pixels(1), tiles: 1 };
  const t1 = (await timed(() => gen([one], 1))).median_s;
  const tn = (await timed(() => gen([one], 1 + decodeTokens), Math.max(1, Math.floor(reps / 2)))).median_s;
  const l = cfg.llm_config;
  const headDim = l.hidden_size / l.num_attention_heads;
  res.decode_batch1 = { tokens_per_s: decodeTokens / (tn - t1), kv_bytes_per_token: 2 * l.num_hidden_layers * l.num_key_value_heads * headDim * 2 };
  for (const b of batches) {
    const seqs = Array.from({ length: b }, () => ({ inputIds: ids(1, 30), pixelValues: pixels(1), tiles: 1 }));
    try {
      const a = (await timed(() => gen(seqs, 1), 1, 0)).median_s;
      const z = (await timed(() => gen(seqs, 1 + decodeTokens), 1, 0)).median_s;
      res[`decode_batch${b}`] = { tokens_per_s: (b * decodeTokens) / (z - a), prompt_tokens: promptLen };
    } catch (e) {
      res[`decode_batch${b}`] = { error: String(e.message ?? e).slice(0, 300) };
    }
  }
  res.peak_bytes = engine.stats().deviceMemory[0]?.peakBytes;
  res.device_memory = engine.stats().deviceMemory;
  engine.dispose();
  return res;
}

const info = runtimeInfo();
// The CUDA switches this run had (docs/ENGINE.md), so A/B runs label themselves.
const switches = Object.fromEntries(
  ['INTERNVL_CUDA_FUSED_VIT', 'INTERNVL_CUDA_PDL', 'INTERNVL_CUDA_GEMM_AUTOTUNE', 'INTERNVL_CUDA_GENERIC_ATTENTION'].filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]),
);
const doc = { engine: 'internvl-node', version: info.version, gpu: info.cuda.devices[0]?.name ?? 'cpu', date: new Date().toISOString().slice(0, 10), switches, models: {} };
for (const path of configs) {
  const name = path.split('/').pop().replace(/\.json$/, '');
  console.log(`== ${name}`);
  // bf16 under the model's name (what report.mjs pairs with the baseline), others under name.dtype
  for (const dtype of dtypes) {
    let r;
    try {
      r = await benchModel(path, dtype);
    } catch (e) {
      r = { dtype, error: String(e.stack ?? e).slice(0, 800) };
    }
    if (dtype === 'bf16') doc.models[name] = { ...doc.models[name], ...r };
    else doc.models[name] = { ...doc.models[name], [dtype]: r };
    console.log(JSON.stringify(r, null, 1));
    writeFileSync(out, `${JSON.stringify(doc, null, 2)}\n`);
  }
}
