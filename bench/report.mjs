#!/usr/bin/env node
// Regenerates the README's performance section from the committed result files
// (bench/results/*.json and the kernel labs' results), so no figure is hand-typed.
//   node bench/report.mjs            (rewrites README.md between the perf markers)
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const read = (p) => JSON.parse(readFileSync(join(root, p), 'utf8'));
const latest = (dir, prefix) =>
  existsSync(join(root, dir))
    ? readdirSync(join(root, dir)).filter((f) => f.startsWith(prefix) && f.endsWith('.json')).sort().map((f) => `${dir}/${f}`).pop()
    : undefined;
const f = (x, d = 1) => (x === undefined || x === null ? '–' : Number(x).toFixed(d));
const lines = [];

// The transformers baseline: per model, the latest file that measured it.
const baselineFiles = existsSync(join(root, 'bench/results'))
  ? readdirSync(join(root, 'bench/results')).filter((x) => x.startsWith('baseline-transformers-') && x.endsWith('.json')).sort()
  : [];
const baseRows = new Map();
for (const fb of baselineFiles) {
  const b = read(`bench/results/${fb}`);
  for (const [name, m] of Object.entries(b.models)) if (!m.error) baseRows.set(name, { m, b, src: `bench/results/${fb}` });
}
if (baseRows.size) {
  const any = [...baseRows.values()][0].b;
  lines.push(
    `### PyTorch + transformers baseline (${any.gpu}, ${any.date}; torch ${any.versions.torch}, transformers ${any.versions.transformers}, bf16, SDPA, random weights at release shapes)`,
    '',
    'Decode roofline = weight + KV bytes per token ÷ the device copy bandwidth measured in the same run.',
    '',
    '| model | ViT 13 tiles | ViT TFLOP/s | prefill 1850 tok | TTFT 1 tile | TTFT 13 tiles | decode b=1 | % roofline | b=8 | b=32 | b=128 | peak mem | source |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const [name, { m, b, src }] of baseRows) {
    const roof = b.copy_bandwidth_Bps / m.decode_batch1.bytes_per_token;
    lines.push(
      `| ${name} | ${f(m.vit_13_tiles.median_s * 1000, 0)} ms | ${f(m.vit_13_tiles.tflops, 0)} | ${f(m.prefill_1850.median_s * 1000, 0)} ms | ` +
        `${f(m.ttft_1_tiles.median_s * 1000, 0)} ms | ${f(m.ttft_13_tiles.median_s * 1000, 0)} ms | ${f(m.decode_batch1.tokens_per_s)} tok/s | ` +
        `${f((100 * m.decode_batch1.tokens_per_s) / roof, 0)}% of ${f(roof, 0)} (${f(b.copy_bandwidth_Bps / 1e12, 2)} TB/s) | ${f(m.decode_batch8?.tokens_per_s, 0)} | ${f(m.decode_batch32?.tokens_per_s, 0)} | ` +
        `${f(m.decode_batch128?.tokens_per_s, 0)} | ${f(m.peak_memory_bytes / 2 ** 30, 1)} GiB | \`${src.split('/').pop()}\` |`,
    );
  }
  lines.push('', 'Made by `bench/baseline_transformers.py`. Our engine at the same shapes is in the next table.', '');
}

// Ours vs transformers: each ours-X.json pairs with baseline-transformers-X.json from the
// same GPU session; per model the latest pair wins.
const resultFiles = existsSync(join(root, 'bench/results')) ? readdirSync(join(root, 'bench/results')).sort() : [];
const pairs = new Map();
for (const fo of resultFiles.filter((x) => x.startsWith('ours-') && x.endsWith('.json'))) {
  const fb = `baseline-transformers-${fo.slice('ours-'.length)}`;
  if (!resultFiles.includes(fb)) continue;
  const o = read(`bench/results/${fo}`);
  const b = read(`bench/results/${fb}`);
  for (const [name, m] of Object.entries(o.models)) {
    const t = b.models[name];
    if (t && !m.error && !t.error) pairs.set(name, { m, t, bw: b.copy_bandwidth_Bps, gpu: o.gpu, date: o.date, src: `bench/results/${fo}`, srcB: `bench/results/${fb}` });
  }
}
if (pairs.size) {
  lines.push(
    '### internvl-node (CUDA backend, bf16, --dummy-weights) vs transformers, each pair measured in one GPU session',
    '',
    '| model | metric | internvl-node | transformers | ratio |',
    '|---|---|---|---|---|',
  );
  const sources = new Set();
  for (const [name, { m, t, bw, src, srcB }] of pairs) {
    sources.add(`\`${src}\` with \`${srcB}\``);
    const roof = bw / t.decode_batch1.bytes_per_token;
    const row = (metric, ours_, theirs, unit, higherBetter) =>
      lines.push(`| ${name} | ${metric} | ${f(ours_, unit === 'ms' ? 0 : 1)} ${unit} | ${f(theirs, unit === 'ms' ? 0 : 1)} ${unit} | ${f(higherBetter ? ours_ / theirs : theirs / ours_, 2)}× |`);
    row('decode batch 1', m.decode_batch1.tokens_per_s, t.decode_batch1.tokens_per_s, 'tok/s', true);
    lines.push(`| ${name} | decode batch 1, % of HBM roofline (${f(roof, 0)} tok/s) | ${f((100 * m.decode_batch1.tokens_per_s) / roof, 0)}% | ${f((100 * t.decode_batch1.tokens_per_s) / roof, 0)}% | |`);
    for (const k of [8, 32, 128]) if (m[`decode_batch${k}`]?.tokens_per_s && t[`decode_batch${k}`]?.tokens_per_s) row(`decode batch ${k}`, m[`decode_batch${k}`].tokens_per_s, t[`decode_batch${k}`].tokens_per_s, 'tok/s', true);
    row('TTFT, 1 tile + 30 tokens', m.ttft_1_tiles.median_s * 1000, t.ttft_1_tiles.median_s * 1000, 'ms', false);
    row('TTFT, 13 tiles + 30 tokens', m.ttft_13_tiles.median_s * 1000, t.ttft_13_tiles.median_s * 1000, 'ms', false);
    if (m.ttft_13_tiles.flop) {
      // the request's bf16 work at the tensor cores' peak: no engine can answer faster
      const floor = (m.ttft_13_tiles.flop / 790e12) * 1000;
      lines.push(`| ${name} | TTFT 13 tiles, compute floor ${f(floor, 0)} ms (${f(m.ttft_13_tiles.flop / 1e12, 0)} TFLOP at 790 TFLOP/s) | ${f((100 * floor) / (m.ttft_13_tiles.median_s * 1000), 0)}% of peak | ${f((100 * floor) / (t.ttft_13_tiles.median_s * 1000), 0)}% of peak | |`);
    }
    row('ViT, 13 tiles', m.vit_13_tiles.median_s * 1000, t.vit_13_tiles.median_s * 1000, 'ms', false);
    lines.push(`| ${name} | ViT TFLOP/s (% of 790) | ${f(m.vit_13_tiles.tflops, 0)} (${f(m.vit_13_tiles.tflops / 7.9, 0)}%) | ${f(t.vit_13_tiles.tflops, 0)} | |`);
    row('prefill, 1850 text tokens', m.prefill_1850.median_s * 1000, t.prefill_1850.median_s * 1000, 'ms', false);
  }
  lines.push('', `Sources (\`bench/run.mjs\` and \`bench/baseline_transformers.py\`): ${[...sources].join('; ')}.`, '');
}

// int8 (W8A16 per channel) rows, from the same ours-X.json files (models[name].int8).
const int8Rows = [...pairs].filter(([, p]) => p.m.int8 && !p.m.int8.error);
if (int8Rows.length) {
  lines.push(
    '### int8 weights (W8A16, per channel) vs our bf16 and transformers bf16, same GPU session',
    '',
    'int8 roofline = int8 decoder linears + fp32 scales + bf16 head + KV bytes per token ÷ the copy bandwidth measured in the same run.',
    '',
    '| model | metric | int8 | our bf16 | transformers bf16 | int8 ÷ our bf16 | int8 ÷ transformers |',
    '|---|---|---|---|---|---|---|',
  );
  const gib = (b) => (b === undefined ? undefined : b / 2 ** 30);
  const slower = [];  // decode batches where int8 runs slower than our bf16
  for (const [name, { m, t, bw }] of int8Rows) {
    const q = m.int8;
    const row = (metric, a, b, c, unit, higherBetter, d = 1) =>
      lines.push(
        `| ${name} | ${metric} | ${f(a, d)} ${unit} | ${f(b, d)} ${unit} | ${c === undefined ? '–' : `${f(c, d)} ${unit}`} | ` +
          `${f(higherBetter ? a / b : b / a, 2)}× | ${c === undefined ? '' : `${f(higherBetter ? a / c : c / a, 2)}×`} |`,
      );
    row('decode batch 1', q.decode_batch1.tokens_per_s, m.decode_batch1.tokens_per_s, t.decode_batch1.tokens_per_s, 'tok/s', true);
    // KV read per step at the decode run's mean context (1 tile = 256 tokens + 30 + half of 128 new)
    const kvb = q.decode_batch1.kv_bytes_per_token * (256 + 30 + 64);
    const roof8 = bw / (q.decode_weight_bytes_per_token + kvb);
    lines.push(`| ${name} | decode batch 1, % of int8 roofline (${f(roof8, 0)} tok/s) | ${f((100 * q.decode_batch1.tokens_per_s) / roof8, 0)}% | | | | |`);
    for (const k of [8, 32, 128]) {
      if (!q[`decode_batch${k}`]?.tokens_per_s) continue;
      row(`decode batch ${k}`, q[`decode_batch${k}`].tokens_per_s, m[`decode_batch${k}`]?.tokens_per_s, t[`decode_batch${k}`]?.tokens_per_s, 'tok/s', true, 0);
      if (q[`decode_batch${k}`].tokens_per_s < m[`decode_batch${k}`]?.tokens_per_s) slower.push(`${name} batch ${k}`);
    }
    row('TTFT, 13 tiles + 30 tokens', q.ttft_13_tiles.median_s * 1000, m.ttft_13_tiles.median_s * 1000, t.ttft_13_tiles.median_s * 1000, 'ms', false, 0);
    row('prefill, 1850 text tokens', q.prefill_1850.median_s * 1000, m.prefill_1850.median_s * 1000, t.prefill_1850.median_s * 1000, 'ms', false, 0);
    if (q.weight_bytes && m.weight_bytes) row('weights on the GPU', gib(q.weight_bytes), gib(m.weight_bytes), undefined, 'GiB', false);
    if (q.peak_bytes && m.peak_bytes) row('peak device memory (allocator, whole run)', gib(q.peak_bytes), gib(m.peak_bytes), gib(t.peak_memory_bytes), 'GiB', false);
  }
  if (slower.length)
    lines.push(
      '',
      `int8 decodes slower than our bf16 at ${slower.join(', ')}. Where the bf16 weights fit, bf16 is then the faster ` +
        "choice for large batches; int8's gains are small-batch decode and memory.",
    );
  lines.push('');
}

// Later 40B decode steps than the table above (kernel changes measured without a full bench
// run): the latest decode-steps-*.json, int8 beside bf16 of the same call per label and batch.
const ds = latest('bench/results', 'decode-steps-');
if (ds) {
  const d = read(ds);
  lines.push(
    `**Later 40B decode steps** (${d.gpu}, ${d.date}; \`bench/profile.mjs\`, ms per step, each line one call's runs):`,
    '',
    '| run | batch | int8 ms | bf16 ms | int8 ÷ bf16 speed | int8 tok/s per sequence | % of int8 roofline |',
    '|---|---|---|---|---|---|---|',
  );
  const keyOf = (r) => `${r.label}\u0000${r.batch}`;
  for (const key of [...new Set(d.runs.map(keyOf))]) {
    const rs = d.runs.filter((r) => keyOf(r) === key);
    const [label, batch] = key.split('\u0000');
    const of = (dt) => rs.filter((r) => r.dtype === dt).map((r) => r.step_ms);
    const i8 = of('int8'), b16 = of('bf16');
    const lo = f(Math.min(...b16) / Math.max(...i8), 2), hi = f(Math.max(...b16) / Math.min(...i8), 2);
    const ratio = i8.length && b16.length ? `${lo === hi ? lo : `${lo}–${hi}`}×` : '–';
    const tok = i8.length ? 1000 / Math.min(...i8) : undefined;
    const roof = batch === '1' && d.int8_roofline_tok_s && tok ? `${f((100 * tok) / d.int8_roofline_tok_s, 0)}% of ${d.int8_roofline_tok_s}` : '';
    lines.push(`| ${label} | ${batch} | ${i8.map((x) => f(x, 2)).join(' / ') || '–'} | ${b16.map((x) => f(x, 2)).join(' / ') || '–'} | ${ratio} | ${f(tok, 1)} | ${roof} |`);
  }
  lines.push('', `Source: \`${ds}\` (the int8 roofline is the table above's).`, '');
}

// Device map (issue #10): the latest devicemap-*.json (several GPUs of one host).
const dm = latest('bench/results', 'devicemap-');
if (dm) {
  const d = read(dm);
  lines.push(`### Device map: models split across GPUs (${d.gpu}, ${d.date})`, '', '| run | layers per GPU | weights per GPU | decode b=1 | decode b=8 | TTFT 13 tiles | prefill 1850 tok |', '|---|---|---|---|---|---|---|');
  for (const [name, r] of Object.entries(d.runs)) {
    const layers = r.device_map ? [0, 1, 2, 3, 4, 5, 6, 7].map((g) => r.device_map.layers.filter((x) => x === g).length).filter((n) => n > 0).join(' / ') : 'all';
    const w = (r.device_memory ?? []).map((m) => `${f(m.weightBytes / 2 ** 30, 1)}`).join(' / ');
    lines.push(
      `| ${name} | ${layers} | ${w} GiB | ${f(r.decode_batch1?.tokens_per_s)} tok/s | ${f(r.decode_batch8?.tokens_per_s, 0)} tok/s | ` +
        `${f(r.ttft_13_tiles?.median_s * 1000, 0)} ms | ${f(r.prefill_1850?.median_s * 1000, 0)} ms |`,
    );
  }
  lines.push('', `Source: \`${dm}\` (\`bench/run.mjs --device-map auto\`; the one-GPU row is the same session).`, '');
}

// Memory per model size (weights as the engine loads them, lib/deviceMap.ts moduleBytes),
// computed from the release configs in bench/configs: what fits on one 80 GB / 141 GB GPU.
if (existsSync(join(root, 'dist/deviceMap.js'))) {
  const { moduleBytes } = await import(join(root, 'dist/deviceMap.js'));
  const { parseModelConfig } = await import(join(root, 'dist/config.js'));
  const cfgs = readdirSync(join(root, 'bench/configs')).filter((x) => x.endsWith('.json'));
  const size = (x) => Number(x.match(/(\d+)B/)?.[1] ?? 0);
  cfgs.sort((a, b) => size(a) - size(b));
  const GB = 1e9;
  lines.push(
    '### Memory per model size (weights as loaded + KV cache for 8192 tokens + ~1.5 GB workspace)',
    '',
    '| model | bf16 weights | int8 weights (decoder linears) | KV per 1k tokens | one 80 GB GPU | one 141 GB GPU (H200) |',
    '|---|---|---|---|---|---|',
  );
  for (const c of cfgs) {
    const { spec } = parseModelConfig(JSON.parse(readFileSync(join(root, 'bench/configs', c), 'utf8')), c);
    const total = (dtype) => {
      const m = moduleBytes(spec, { dtype });
      return m.vision + m.embed + m.head + spec.llm.numLayers * m.layer;
    };
    const kv1k = moduleBytes(spec, { dtype: 'bf16' }).kvPerLayerPerToken * spec.llm.numLayers * 1000;
    const need = (dtype) => total(dtype) + 8.192 * kv1k + 1.5 * GB;
    const fits = (cap) => ['bf16', 'int8'].filter((d) => need(d) <= cap).join(', ') || 'split (device map)';
    lines.push(`| ${c.replace('.json', '')} | ${f(total('bf16') / GB, 1)} GB | ${f(total('int8') / GB, 1)} GB | ${f(kv1k / 1e6, 0)} MB | ${fits(80 * GB)} | ${fits(141 * GB)} |`);
  }
  lines.push('', 'Computed by `bench/report.mjs` from `bench/configs/*.json` with the loader\'s rules (int8 = W8A16 per channel on the decoder linears, ViT/projector/embeddings/head bf16); the 40B row agrees with the allocator\'s measured weights above.', '');
}

// Decode after the per-step host cost fixes (issue #8): the latest decode-host-*.json.
const dh = latest('bench/results', 'decode-host-');
if (dh) {
  const d = read(dh);
  const m = d.run, b = d.baseline_previous_session ?? {};
  lines.push(
    `### Decode batching at InternVL2-8B shapes after the per-step host fixes (${d.gpu}, ${d.date})`,
    '',
    'Greedy tokens picked on the GPU (one id per row comes back instead of the logits), sampled rows downloaded alone into page-locked memory, prefix cache off. No transformers run fitted in that session: its static batching is the previous session\'s on the same GPU type.',
    '',
    '| batch | internvl-node | transformers (previous session) | ratio |',
    '|---|---|---|---|',
  );
  for (const k of [1, 8, 32, 128]) {
    const o = m[`decode_batch${k}`]?.tokens_per_s, t = b[`decode_batch${k}`]?.tokens_per_s;
    if (o) lines.push(`| ${k} | ${f(o, 0)} tok/s | ${t ? `${f(t, 0)} tok/s` : '–'} | ${t ? `${f(o / t, 1)}×` : ''} |`);
  }
  lines.push('', `Source: \`${dh}\` (also: on-device greedy pick vs logits download, per-step split, host sampler µs per row).`, '');
}

// Load test (issue #8): the latest loadtest-*.json; its static-batching comparison comes from
// the transformers baseline file it names (same GPU session).
const lt = latest('bench/results', 'loadtest-');
if (lt) {
  const d = read(lt);
  const b = d.baseline && existsSync(join(root, d.baseline)) ? read(d.baseline) : undefined;
  lines.push(
    `### Serving load test: concurrent streaming clients on loopback (${d.gpu}, ${d.date})`,
    '',
    'Each client sends requests back to back: 1 tile (448²) + a ~30-token question, 128 output tokens, streamed over SSE from `internvl serve`\'s handler. ' +
      'transformers: the same requests batched statically by `generate` (everyone\'s first token when the batch\'s prefill ends).',
    '',
    '| model | clients | output tok/s | × 1 client | TTFT p50 | TTFT p99 | p99 ÷ 1-client TTFT | transformers static: tok/s | TTFT |',
    '|---|---|---|---|---|---|---|---|---|',
  );
  for (const [name, m] of Object.entries(d.models)) {
    const t = b?.models?.[name];
    const rows = [...Object.entries(m.levels), ...Object.entries(m.burst ?? {}).map(([n, r]) => [n, r, ' (all at once)'])];
    for (const [n, r, label = ''] of rows) {
      const st = t?.[`decode_batch${n}`];
      const e2e = st?.end_to_end_tokens_per_s;
      lines.push(
        `| ${name} | ${n}${label} | ${f(r.tokens_per_s, 0)} | ${f(r.throughput_vs_1, 1)}× | ${f(r.ttft_p50_ms, 0)} ms | ${f(r.ttft_p99_ms, 0)} ms | ${f(r.p99_ttft_vs_1, 1)}× | ` +
          `${e2e ? f(e2e, 0) : '–'} | ${st?.ttft_s ? `${f(st.ttft_s * 1000, 0)} ms` : '–'} |`,
      );
    }
  }
  const m0 = Object.values(d.models)[0] ?? {};
  const how = m0.clients_in_worker
    ? `Each request sends its own picture (its tiles go through the ViT); clients start spread over ${m0.ramp_ms} ms (one 1-client request), so TTFT is the steady state; ` +
      'the clients run in a worker thread, apart from the server\'s event loop, as separate client processes would.'
    : 'Measured before the load test sent truly distinct pictures (its pictures were identical until 2026-11-29, so the prefix cache served every prompt\'s tiles after the first) and with the clients parsing their streams on the server\'s event loop.';
  const mixedOn = Object.entries(d.models).filter(([, x]) => x.mixed_steps).map(([name]) => name);
  lines.push('', how + ` Mixed steps: ${mixedOn.length ? `on for ${mixedOn.join(', ')}` : 'off'}.`, '');
  // where a request's TTFT goes on the server (chat()'s timings): JS preprocessing, and the
  // engine's time from submission to the first token, of which the wait for admission
  const split = Object.entries(d.models).flatMap(([name, m]) =>
    Object.entries(m.levels).filter(([, r]) => r.ttft_split).map(([n, r]) => [name, n, r.ttft_split, r]),
  );
  if (split.length) {
    const itl = split.some(([, , , r]) => r.itl_p99_ms !== undefined);
    lines.push(
      `| model | clients | preprocess p50 / p99 | engine: submit → first token p50 / p99 | of which waiting for admission p99 |${itl ? ' inter-token p50 / p99 |' : ''}`,
      `|---|---|---|---|---|${itl ? '---|' : ''}`,
      ...split.map(
        ([name, n, x, r]) =>
          `| ${name} | ${n} | ${f(x.preprocess_p50_ms, 1)} / ${f(x.preprocess_p99_ms, 1)} ms | ${f(x.engine_first_token_p50_ms, 0)} / ${f(x.engine_first_token_p99_ms, 0)} ms | ${f(x.engine_queue_p99_ms, 1)} ms |` +
          (itl ? ` ${f(r.itl_p50_ms, 1)} / ${f(r.itl_p99_ms, 1)} ms |` : ''),
      ),
      '',
    );
  }
  lines.push(`Source: \`${lt}\` (\`bench/loadtest.mjs\`)${d.baseline ? ` with \`${d.baseline}\`` : ''}.`, '');
  // mixed prefill+decode steps (LoadOptions.mixedSteps): the same load test with the other
  // setting, run in the same GPU session as the file above. Each model file records the setting
  // it ran with (files before 2026-11-29's default change ran without mixed steps unless the
  // A/B file, which then had them on).
  const mx = latest('bench/results', 'mixedsteps-loadtest-');
  const m = mx ? read(mx) : undefined;
  // Its pair is the file it names (`against`), which a later full load test may have
  // superseded as the table above.
  const base = m && m.against ? (m.against === lt ? d : existsSync(join(root, m.against)) ? read(m.against) : undefined) : undefined;
  if (m && base) {
    const mxItl = Object.values(m.models).some((x) => Object.values(x.levels).some((r) => r.itl_p99_ms !== undefined));
    lines.push(
      '**Mixed steps** (`mixedSteps`: the running sequences decode inside each prefill step instead of in a step of their own; by default on for CUDA), same session:',
      '',
      `| model | clients | ${m.against === lt ? 'in the table above' : 'in its pair'} | output tok/s off → on | TTFT p50 off → on | TTFT p99 off → on | p99 ÷ 1-client TTFT off / on |${mxItl ? ' inter-token p99 off / on |' : ''}`,
      `|---|---|---|---|---|---|---|${mxItl ? '---|' : ''}`,
    );
    for (const [name, other] of Object.entries(m.models)) {
      const main = base.models[name];
      if (!main) continue;
      const otherOn = other.mixed_steps !== false;
      const [off, on] = otherOn ? [main, other] : [other, main];
      const first = (x) => x.levels[Object.keys(x.levels)[0]];
      for (const [n, r] of Object.entries(on.levels)) {
        const o = off.levels[n];
        if (!o || n === Object.keys(on.levels)[0]) continue;
        lines.push(
          `| ${name} | ${n} | ${otherOn ? 'off' : 'on'} | ${f(o.tokens_per_s, 0)} → ${f(r.tokens_per_s, 0)} | ${f(o.ttft_p50_ms, 0)} → ${f(r.ttft_p50_ms, 0)} ms | ` +
            `${f(o.ttft_p99_ms, 0)} → ${f(r.ttft_p99_ms, 0)} ms | ${f(o.ttft_p99_ms / first(off).ttft_p50_ms, 1)}× / ${f(r.ttft_p99_ms / first(on).ttft_p50_ms, 1)}× |` +
            (r.itl_p99_ms !== undefined && o.itl_p99_ms !== undefined ? ` ${f(o.itl_p99_ms, 0)} / ${f(r.itl_p99_ms, 0)} ms |` : mxItl ? ' – |' : ''),
        );
      }
    }
    lines.push('', `Source: \`${mx}\`${m.against === lt ? '' : ` against \`${m.against}\``}.`, '');
  }
}

// A load-test A/B at 1 and 32 clients: the latest <prefix>*.json (on) beside the file its
// `against` names (off, same session). Returns the pair, or undefined when either is missing.
function loadtestAB(prefix, heading, extra) {
  const file = latest('bench/results', prefix);
  const on = file ? read(file) : undefined;
  const off = on?.against && existsSync(join(root, on.against)) ? read(on.against) : undefined;
  if (!on || !off) return undefined;
  const ms = (a, b) => (a === undefined && b === undefined ? '–' : `${f(a, 0)} → ${f(b, 0)} ms`);
  lines.push(
    `${heading}, ${on.gpu}, ${on.date}:`,
    '',
    `| model | clients | output tok/s off → on | TTFT p50 off → on | TTFT p99 off → on | inter-token p99 off → on |${extra ? ` ${extra.title} |` : ''}`,
    `|---|---|---|---|---|---|${extra ? '---|' : ''}`,
  );
  for (const [name, onModel] of Object.entries(on.models)) {
    const offModel = off.models[name];
    for (const [n, r] of Object.entries(onModel.levels)) {
      const o = offModel?.levels[n];
      if (!o) continue;
      lines.push(
        `| ${name} | ${n} | ${f(o.tokens_per_s, 0)} → ${f(r.tokens_per_s, 0)} | ${ms(o.ttft_p50_ms, r.ttft_p50_ms)} | ${ms(o.ttft_p99_ms, r.ttft_p99_ms)} | ` +
          `${ms(o.itl_p99_ms, r.itl_p99_ms)} |${extra ? ` ${extra.cell(r)} |` : ''}`,
      );
    }
  }
  return { file, on, off };
}

// Matmul warm-up at load (EngineOptions::warmMatmulShapes, on by default): what it did to the
// TTFT under load, and the issue #8 ratios with it.
const wu = loadtestAB('warmup-loadtest-', '**Matmul shapes warmed at load** (every bf16 decoder linear and the head at 1..32 rows, planned and timed once at load instead of in live steps; `INTERNVL_WARM_MATMULS=0` turns it off)');
if (wu) {
  const ratios = Object.entries(wu.on.models).map(([name, m]) => {
    const b = m.levels['1'], t = m.levels['32'];
    return `${name} p99 TTFT ${f(t.ttft_p99_ms / b.ttft_p50_ms, 2)}× the 1-client TTFT, throughput ${f(t.tokens_per_s / b.tokens_per_s, 1)}×`;
  });
  lines.push(
    '',
    `With it, at 32 clients: ${ratios.join('; ')} (issue #8's goals: ≤ 3× and ≥ 10×).` +
      (lt && read(lt).date <= wu.on.date && !read(lt).models?.['InternVL2-8B']?.warm_matmuls ? ' The full load test above was recorded before it.' : ''),
    '',
    `Source: \`${wu.file}\` against \`${wu.on.against}\`.`,
    '',
  );
}

// Vision ahead (LoadOptions.visionAhead): its A/B (the off side is that date's loadtest file, or
// the plain 1- and 32-client levels `bench/run_loadtest.sh vision` ran for it).
const vaAB = loadtestAB(
  'visionahead-loadtest-',
  "**Vision ahead** (`visionAhead`: a vision thread encodes each request's tiles on a CUDA stream of its own as soon as it arrives, while the running requests keep decoding; off by default)",
  { title: 'tiles encoded ahead / requests', cell: (r) => `${r.engine?.vision_ahead_tiles ?? '–'} / ${r.requests}` },
);
const va = vaAB?.file;
const vaOn = vaAB?.on;
if (vaAB) {
  lines.push('', `Source: \`${va}\` against \`${vaOn.against}\`.`);
  // every run of the day (visionahead-runs-*.json): one pair is not the verdict, the spread is
  const runsFile = latest('bench/results', 'visionahead-runs-');
  const runs = runsFile ? read(runsFile).runs : [];
  if (runs.length) {
    const spread = (model, on) => {
      const p99 = runs.filter((r) => r.model === model && r.vision_ahead === on).map((r) => r.levels['32']?.ttft_p99_ms).filter((v) => v !== undefined);
      return p99.length ? `${f(Math.min(...p99), 0)}–${f(Math.max(...p99), 0)} ms (${p99.length} runs)` : '–';
    };
    const models = [...new Set(runs.map((r) => r.model))];
    lines.push(
      '',
      `Every run of the day (\`${runsFile}\`), 32-client TTFT p99, off / on: ` +
        models.map((m) => `${m} ${spread(m, false)} / ${spread(m, true)}`).join('; ') +
        ' (on: the vision stream at default or highest priority). Not a reliable gain, and a loss at 40B shapes: off by default.',
    );
  }
  lines.push('');
}

const att = 'cuda/dev/results/attention-2026-11-28-h200.json';
if (existsSync(join(root, att))) {
  const a = read(att);
  const dec = a.bench.filter((r) => r.kernel === 'decode' && r.model === '40B' && r.version === a.bench.find((x) => x.kernel === 'decode' && x.model === '40B')?.version);
  if (dec.length) {
    lines.push(`### Kernel lab: paged decode attention, 40B heads (56 q / 8 kv, D 128), ${String(a.gpu ?? 'H200').split(',')[0]}`, '', '| batch | kv length | µs | % of copy bandwidth |', '|---|---|---|---|');
    for (const r of dec) lines.push(`| ${r.batch ?? r.B ?? '?'} | ${r.kv_len ?? r.kv ?? '?'} | ${f(r.median_us)} | ${f(r.pct_peak, 0)}% |`);
    lines.push('', `Source: \`${att}\` (\`cuda/dev/run_all.sh\`).`, '');
  }
}

// The W8A16 lab: the latest session's final run (m = 1 and 16 against cuBLAS bf16, and the 40B
// layer chain), else the first full run (m = 1 only).
const w8 = ['cuda/dev/w8a16/results/w8a16-2026-11-29-h200-s6-final.json', 'cuda/dev/w8a16/results/w8a16-2026-11-28-h200.json'].find(
  (x) => existsSync(join(root, x)),
);
if (w8) {
  const w = read(w8);
  const pick = (shape, m, kernel) => w.results.find((r) => r.model === '40B' && r.shape === shape && r.m === m && r.kernel === kernel);
  const shapes = [...new Set(w.results.filter((r) => r.model === '40B' && r.m === 1 && r.kernel === 'cublas bf16').map((r) => r.shape))];
  const ms = [1, 16].filter((m) => shapes.some((s) => pick(s, m, 'w8a16 per-channel')));
  if (shapes.length) {
    lines.push(
      `### Kernel lab: W8A16 int8 GEMV vs cuBLAS bf16 (40B shapes, m = ${ms.join(' and ')}, each call alone, L2 flushed)`,
      '',
      `| shape |${ms.map((m) => ` m = ${m}: int8 per-channel µs | % int8 roofline | cuBLAS bf16 µs | speedup |`).join('')}`,
      `|---|${ms.map(() => '---|---|---|---|').join('')}`,
    );
    for (const s of shapes) {
      const cells = ms.map((m) => {
        const q = pick(s, m, 'w8a16 per-channel');
        const c = pick(s, m, 'cublas bf16');
        return q && c ? ` ${f(q.us)} | ${f(q.pct_roofline, 0)}% | ${f(c.us)} | ${f(c.us / q.us, 2)}× |` : ' – | – | – | – |';
      });
      lines.push(`| ${s} |${cells.join('')}`);
    }
    const chain = w.results.filter((r) => r.summary === '40B layer chain' && r.pdl && r.kernels === '4 GEMV');
    if (chain.length) {
      lines.push(
        '',
        'The same GEMVs as a 40B decode step runs them (qkv, o, gate/up, down per layer, 60 distinct layers, each reading the previous output, programmatic dependent launch), µs per layer:',
        '',
        '| scheme | m | µs / layer | weight TB/s | % of 4.3 TB/s |',
        '|---|---|---|---|---|',
      );
      for (const r of chain) lines.push(`| ${r.scheme} | ${r.m} | ${f(r.us_per_layer)} | ${f(r.TBps, 2)} | ${f(r.pct_4_3TBps, 0)}% |`);
    }
    lines.push('', `Source: \`${w8}\` (\`cuda/dev/w8a16\`).`, '');
  }
}

const pre = latest('bench/results', 'preprocess-');
if (pre) {
  const p = read(pre);
  lines.push(`### Image preprocessing (${p.machine.cpus} cores ${p.machine.model}, ${p.date})`, '');
  // Older files hold one input at the top level; newer ones a map of inputs.
  const runs = p.results ?? { input: { ...p, tileCount: p.input.tiles } };
  lines.push('| input | tiles | total (median) | decode | resize + crop + normalize | target |', '|---|---|---|---|---|---|');
  for (const [name, r] of Object.entries(runs)) {
    const tiles = r.tilesWarm ?? r.resizeCropNormalize;
    lines.push(
      `| ${p.input.width}×${p.input.height} JPEG (${name}${r.jpegBytes ? `, ${f(r.jpegBytes / 1e6, 1)} MB` : ''}) | ${r.tileCount} | ` +
        `${f(r.total.medianMs, 0)} ms | ${f(r.decode.medianMs, 0)} ms | ${f(tiles?.medianMs, 0)} ms | ${p.targetMs} ms |`,
    );
  }
  lines.push('', `Source: \`${pre}\` (\`bench/preprocess.mjs\`).`, '');
}

const readme = readFileSync(join(root, 'README.md'), 'utf8');
const start = '<!-- perf:start (generated by bench/report.mjs) -->';
const end = '<!-- perf:end -->';
const block = `${start}\n${lines.join('\n')}\n${end}`;
const i = readme.indexOf(start);
const j = readme.indexOf(end);
const out = i >= 0 && j > i ? readme.slice(0, i) + block + readme.slice(j + end.length) : `${readme.trimEnd()}\n\n## Performance\n\n${block}\n`;
writeFileSync(join(root, 'README.md'), out);
console.log(lines.join('\n'));
