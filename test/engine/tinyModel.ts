/**
 * Synthetic tiny InternVL2 checkpoints in the original release layout (config.json
 * + safetensors with the real key names), with seeded random weights. For engine
 * behaviour tests and for making broken copies; numerical parity is checked against
 * the PyTorch goldens in test/fixtures instead.
 */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSafetensors, type StDType, type StTensor } from '../helpers/safetensors.js';

export type Family = 'llama' | 'internlm2' | 'qwen2' | 'phi3';

export interface TinyOptions {
  family: Family;
  /** InternViT style: '300m' (LayerNorm, qkv bias) or '6b' (RMSNorm, qk-norm). Default: '6b' for llama. */
  vit?: '300m' | '6b';
  dtype?: StDType;
  /** Split into two shards with an index. */
  sharded?: boolean;
  seed?: number;
  /** Vision image_size in the config (the position-embedding grid); default = tile size 56. */
  vitImageSize?: number;
  /** qwen2: tie_word_embeddings and no lm_head tensor. */
  tied?: boolean;
  /** Extra llm_config fields (rope scaling, max_position_embeddings, ...). */
  llmExtra?: Record<string, unknown>;
}

/** Sizes of every tiny model. */
export const TINY = {
  tile: 56, // 4×4 patches of 14 -> 17 ViT tokens, 4 image tokens per tile
  vitHidden: 32,
  vitHeads: 2,
  vitInter: 64,
  vitLayers: 2,
  hidden: 32,
  heads: 4,
  kvHeads: 2,
  headDim: 8,
  inter: 48,
  layers: 2,
  vocab: 128,
  imageContextId: 120,
  numImageToken: 4,
};

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ARCH: Record<Family, string> = {
  llama: 'LlamaForCausalLM',
  internlm2: 'InternLM2ForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  phi3: 'Phi3ForCausalLM',
};

const TEMPLATE: Record<Family, string> = {
  llama: 'Hermes-2',
  internlm2: 'internlm2-chat',
  qwen2: 'Hermes-2',
  phi3: 'phi3-chat',
};

export function tinyConfig(o: TinyOptions): Record<string, unknown> {
  const vit = o.vit ?? (o.family === 'llama' ? '6b' : '300m');
  const llm: Record<string, unknown> = {
    architectures: [ARCH[o.family]],
    hidden_act: 'silu',
    hidden_size: TINY.hidden,
    intermediate_size: TINY.inter,
    num_hidden_layers: TINY.layers,
    num_attention_heads: TINY.heads,
    num_key_value_heads: o.family === 'phi3' ? TINY.heads : TINY.kvHeads,
    vocab_size: TINY.vocab,
    rms_norm_eps: 1e-5,
    rope_theta: o.family === 'phi3' ? 10000 : 1000000,
    max_position_embeddings: 4096,
    tie_word_embeddings: o.tied ?? false,
  };
  if (o.family === 'internlm2') llm.bias = false;
  Object.assign(llm, o.llmExtra ?? {});
  return {
    architectures: ['InternVLChatModel'],
    model_type: 'internvl_chat',
    template: TEMPLATE[o.family],
    downsample_ratio: 0.5,
    force_image_size: TINY.tile,
    dynamic_image_size: true,
    use_thumbnail: true,
    ps_version: 'v2',
    select_layer: -1,
    min_dynamic_patch: 1,
    max_dynamic_patch: 6,
    vision_config: {
      architectures: ['InternVisionModel'],
      hidden_act: 'gelu',
      hidden_size: TINY.vitHidden,
      intermediate_size: TINY.vitInter,
      num_attention_heads: TINY.vitHeads,
      num_hidden_layers: TINY.vitLayers,
      image_size: o.vitImageSize ?? TINY.tile,
      patch_size: 14,
      num_channels: 3,
      layer_norm_eps: 1e-6,
      norm_type: vit === '6b' ? 'rms_norm' : 'layer_norm',
      qkv_bias: vit === '300m',
      qk_normalization: vit === '6b',
    },
    llm_config: llm,
  };
}

/** Tensor name -> shape, in the release layout for this config. */
export function tinyLayout(o: TinyOptions): Map<string, number[]> {
  const cfg = tinyConfig(o) as { vision_config: Record<string, number | string | boolean>; llm_config: Record<string, unknown> };
  const v = cfg.vision_config;
  const C = v.hidden_size as number;
  const I = v.intermediate_size as number;
  const g = (v.image_size as number) / 14;
  const e = new Map<string, number[]>();
  e.set('vision_model.embeddings.class_embedding', [1, 1, C]);
  e.set('vision_model.embeddings.patch_embedding.weight', [C, 3, 14, 14]);
  e.set('vision_model.embeddings.patch_embedding.bias', [C]);
  e.set('vision_model.embeddings.position_embedding', [1, 1 + g * g, C]);
  for (let i = 0; i < TINY.vitLayers; i++) {
    const L = `vision_model.encoder.layers.${i}.`;
    e.set(L + 'attn.qkv.weight', [3 * C, C]);
    if (v.qkv_bias) e.set(L + 'attn.qkv.bias', [3 * C]);
    if (v.qk_normalization) {
      e.set(L + 'attn.q_norm.weight', [C]);
      e.set(L + 'attn.k_norm.weight', [C]);
    }
    e.set(L + 'attn.proj.weight', [C, C]);
    e.set(L + 'attn.proj.bias', [C]);
    e.set(L + 'mlp.fc1.weight', [I, C]);
    e.set(L + 'mlp.fc1.bias', [I]);
    e.set(L + 'mlp.fc2.weight', [C, I]);
    e.set(L + 'mlp.fc2.bias', [C]);
    for (const n of ['norm1', 'norm2']) {
      e.set(L + n + '.weight', [C]);
      if (v.norm_type === 'layer_norm') e.set(L + n + '.bias', [C]);
    }
    e.set(L + 'ls1', [C]);
    e.set(L + 'ls2', [C]);
  }
  const H = TINY.hidden;
  e.set('mlp1.0.weight', [4 * C]);
  e.set('mlp1.0.bias', [4 * C]);
  e.set('mlp1.1.weight', [H, 4 * C]);
  e.set('mlp1.1.bias', [H]);
  e.set('mlp1.3.weight', [H, H]);
  e.set('mlp1.3.bias', [H]);
  const l = cfg.llm_config;
  const nH = l.num_attention_heads as number;
  const kv = l.num_key_value_heads as number;
  const D = H / nH;
  const F = TINY.inter;
  const V = TINY.vocab;
  const p = 'language_model.model.';
  if (o.family === 'internlm2') {
    e.set(p + 'tok_embeddings.weight', [V, H]);
    for (let i = 0; i < TINY.layers; i++) {
      const L = `${p}layers.${i}.`;
      e.set(L + 'attention.wqkv.weight', [(nH + 2 * kv) * D, H]);
      e.set(L + 'attention.wo.weight', [H, nH * D]);
      e.set(L + 'feed_forward.w1.weight', [F, H]);
      e.set(L + 'feed_forward.w3.weight', [F, H]);
      e.set(L + 'feed_forward.w2.weight', [H, F]);
      e.set(L + 'attention_norm.weight', [H]);
      e.set(L + 'ffn_norm.weight', [H]);
    }
    e.set(p + 'norm.weight', [H]);
    e.set('language_model.output.weight', [V, H]);
    return e;
  }
  e.set(p + 'embed_tokens.weight', [V, H]);
  for (let i = 0; i < TINY.layers; i++) {
    const L = `${p}layers.${i}.`;
    if (o.family === 'phi3') {
      e.set(L + 'self_attn.qkv_proj.weight', [(nH + 2 * kv) * D, H]);
      e.set(L + 'self_attn.o_proj.weight', [H, nH * D]);
      e.set(L + 'mlp.gate_up_proj.weight', [2 * F, H]);
      e.set(L + 'mlp.down_proj.weight', [H, F]);
    } else {
      e.set(L + 'self_attn.q_proj.weight', [nH * D, H]);
      e.set(L + 'self_attn.k_proj.weight', [kv * D, H]);
      e.set(L + 'self_attn.v_proj.weight', [kv * D, H]);
      if (o.family === 'qwen2') {
        e.set(L + 'self_attn.q_proj.bias', [nH * D]);
        e.set(L + 'self_attn.k_proj.bias', [kv * D]);
        e.set(L + 'self_attn.v_proj.bias', [kv * D]);
      }
      e.set(L + 'self_attn.o_proj.weight', [H, nH * D]);
      e.set(L + 'mlp.gate_proj.weight', [F, H]);
      e.set(L + 'mlp.up_proj.weight', [F, H]);
      e.set(L + 'mlp.down_proj.weight', [H, F]);
    }
    e.set(L + 'input_layernorm.weight', [H]);
    e.set(L + 'post_attention_layernorm.weight', [H]);
  }
  e.set(p + 'norm.weight', [H]);
  if (!o.tied) e.set('language_model.lm_head.weight', [V, H]);
  return e;
}

function randomTensor(name: string, shape: number[], dtype: StDType, rnd: () => number): StTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  const isNorm = /norm|ls1|ls2|mlp1\.0\.weight/.test(name) && !name.endsWith('.bias') && !/qkv|proj|fc/.test(name);
  const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : 1;
  const isEmbed = /embed_tokens|tok_embeddings|position_embedding|class_embedding/.test(name);
  for (let i = 0; i < n; i++) {
    const u = rnd() * 2 - 1;
    if (isNorm) data[i] = 1 + 0.2 * u;
    else if (name.endsWith('.bias')) data[i] = 0.1 * u;
    else if (isEmbed) data[i] = u;
    else data[i] = (u * Math.sqrt(3)) / Math.sqrt(fanIn);
  }
  return { dtype, shape, data };
}

/** Random weights for every tensor of the layout. */
export function tinyTensors(o: TinyOptions): Record<string, StTensor> {
  const rnd = mulberry32(o.seed ?? 1234);
  const out: Record<string, StTensor> = {};
  for (const [name, shape] of tinyLayout(o)) out[name] = randomTensor(name, shape, o.dtype ?? 'BF16', rnd);
  return out;
}

/** Writes config.json + weights into dir (made if missing). Returns dir. */
export function writeTinyModel(dir: string, o: TinyOptions): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(tinyConfig(o), null, 2));
  const tensors = tinyTensors(o);
  if (!o.sharded) {
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
    return dir;
  }
  const names = Object.keys(tensors);
  const half = Math.ceil(names.length / 2);
  const shards = [names.slice(0, half), names.slice(half)];
  const weightMap: Record<string, string> = {};
  shards.forEach((list, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    const part: Record<string, StTensor> = {};
    for (const n of list) {
      part[n] = tensors[n];
      weightMap[n] = file;
    }
    writeFileSync(join(dir, file), encodeSafetensors(part));
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  return dir;
}

/** A fresh temp directory. */
export function tempDir(prefix = 'ivl-engine-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Prompt ids with `tiles` image runs of numImageToken <IMG_CONTEXT> ids after `before` text tokens. */
export function promptIds(before: number[], tiles: number, after: number[]): Int32Array {
  const ids = [...before, ...Array(tiles * TINY.numImageToken).fill(TINY.imageContextId), ...after];
  return Int32Array.from(ids);
}

/** Deterministic pixels [tiles, 3, S, S] in roughly the normalized range. */
export function tinyPixels(tiles: number, seed = 7): Float32Array {
  const rnd = mulberry32(seed);
  const out = new Float32Array(tiles * 3 * TINY.tile * TINY.tile);
  for (let i = 0; i < out.length; i++) out[i] = (rnd() * 2 - 1) * 2;
  return out;
}
