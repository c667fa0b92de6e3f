#!/usr/bin/env node
// Weight bytes of bf16 vs int8 (W8A16, issue #7) for configs, computed from shapes the way
// native/runtime/weights.cpp loads them (vectors counted as stored; the CPU backend widens
// them to f32, a few MB). int8 matrices: 1 byte per weight + one fp32 scale per row
// (per-channel) or per row and 128 columns (per-group-128). A tied head asked to be
// quantized gets its own int8 copy (the embedding stays bf16).
//   node scripts/int8-memory.mjs [config.json ...]   (default: bench/configs/InternVL2-*.json)
//   --json   one JSON object instead of the markdown table
import { readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const asJson = args.includes('--json');
let files = args.filter((a) => !a.startsWith('--'));
if (files.length === 0) {
  const dir = join(root, 'bench', 'configs');
  files = readdirSync(dir)
    .filter((f) => /^InternVL2-.*\.json$/.test(f))
    .map((f) => join(dir, f))
    .sort((a, b) => parseFloat(basename(a).slice(10)) - parseFloat(basename(b).slice(10)));
}

/** Matrices [rows, cols] by group, and the count of vector elements. */
function shapes(cfg) {
  const v = cfg.vision_config;
  const l = cfg.llm_config;
  const C = v.hidden_size, I = v.intermediate_size, p = v.patch_size;
  const grid = Math.floor((cfg.force_image_size ?? v.image_size) / p);
  const ckptGrid = Math.floor(v.image_size / p);
  const layersUsed = cfg.select_layer < 0 ? v.num_hidden_layers + 1 + cfg.select_layer : cfg.select_layer + 1;
  const s = Math.round(1 / cfg.downsample_ratio);
  const H = l.hidden_size, F = l.intermediate_size, nH = l.num_attention_heads, KV = l.num_key_value_heads ?? nH;
  const D = l.head_dim ?? H / nH;
  const V = l.vocab_size;
  const arch = l.architectures[0];
  const m = { patch: [], vit: [], projector: [], embed: [], llm: [], head: [] };
  let vectors = 0;
  m.patch.push([C, 3 * p * p]);
  vectors += C + C + (1 + grid * grid) * C; // patch bias, cls, position embedding (resized grid)
  void ckptGrid;
  for (let i = 0; i < layersUsed; i++) {
    m.vit.push([3 * C, C], [C, C], [I, C], [C, I]);
    vectors += (v.qkv_bias ? 3 * C : 0) + (v.qk_normalization ? 2 * C : 0) + C + I + C; // biases, qk norms
    vectors += (v.norm_type === 'layer_norm' ? 4 : 2) * C + 2 * C; // norms, layer scales
  }
  m.projector.push([H, s * s * C], [H, H]);
  vectors += 2 * s * s * C + 2 * H;
  m.embed.push([V, H]);
  const qkvBias = arch === 'Qwen2ForCausalLM' || l.attention_bias === true;
  for (let i = 0; i < l.num_hidden_layers; i++) {
    m.llm.push([nH * D, H], [KV * D, H], [KV * D, H], [H, nH * D], [F, H], [F, H], [H, F]);
    vectors += (qkvBias ? (nH + 2 * KV) * D : 0) + 2 * H;
  }
  vectors += H;
  const tied = l.tie_word_embeddings === true;
  m.head.push([V, H]);
  return { m, vectors, tied };
}

const bf16Bytes = (list) => list.reduce((a, [r, c]) => a + 2 * r * c, 0);
const int8Bytes = (list, group) =>
  list.reduce((a, [r, c]) => a + r * c + 4 * r * (group ? Math.ceil(c / group) : 1), 0);

function report(file) {
  const cfg = JSON.parse(readFileSync(file, 'utf8'));
  const { m, vectors, tied } = shapes(cfg);
  const vec = 2 * vectors; // as stored (bf16)
  const head = tied ? 0 : bf16Bytes(m.head);
  const common = bf16Bytes(m.patch) + bf16Bytes(m.embed) + vec;
  const bf16 = common + bf16Bytes(m.vit) + bf16Bytes(m.projector) + bf16Bytes(m.llm) + head;
  const out = { model: basename(file, '.json'), bf16 };
  for (const [name, group] of [['perChannel', 0], ['perGroup128', 128]]) {
    out[`int8Llm_${name}`] = common + bf16Bytes(m.vit) + bf16Bytes(m.projector) + int8Bytes(m.llm, group) + head;
    out[`int8All_${name}`] =
      common + int8Bytes(m.vit, group) + int8Bytes(m.projector, group) + int8Bytes(m.llm, group) + int8Bytes(m.head, group);
  }
  return out;
}

const rows = files.map(report);
if (asJson) {
  process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
} else {
  const gb = (b) => (b / 1e9).toFixed(2);
  const pct = (b, ref) => `${((100 * b) / ref).toFixed(0)}%`;
  console.log('| model | bf16 | int8 LLM linears, per-channel | per-group-128 | int8 + ViT, projector, head (per-channel) | per-group-128 |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.model} | ${gb(r.bf16)} GB | ${gb(r.int8Llm_perChannel)} GB (${pct(r.int8Llm_perChannel, r.bf16)}) | ` +
        `${gb(r.int8Llm_perGroup128)} GB (${pct(r.int8Llm_perGroup128, r.bf16)}) | ` +
        `${gb(r.int8All_perChannel)} GB (${pct(r.int8All_perChannel, r.bf16)}) | ` +
        `${gb(r.int8All_perGroup128)} GB (${pct(r.int8All_perGroup128, r.bf16)}) |`,
    );
  }
}
