/**
 * The fixture checkpoints keep the original InternVL2 release layout (SPEC.md §1–3):
 * every key name, dtype and shape follows from config.json the way the released
 * checkpoints do, with nothing missing and nothing extra. Reads safetensors headers
 * directly, independently of the native loader.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir } from './helpers/goldens.js';

type Header = Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;

function readHeader(path: string): Header {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const h = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Header;
  delete h.__metadata__;
  return h;
}

/** Every tensor of a checkpoint dir, with the file it lives in. */
function readCheckpoint(dir: string): Map<string, { dtype: string; shape: number[]; file: string }> {
  const out = new Map<string, { dtype: string; shape: number[]; file: string }>();
  const index = join(dir, 'model.safetensors.index.json');
  const files = existsSync(index)
    ? [...new Set(Object.values((JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map))]
    : ['model.safetensors'];
  for (const f of files) {
    for (const [k, v] of Object.entries(readHeader(join(dir, f)))) out.set(k, { dtype: v.dtype, shape: v.shape, file: f });
  }
  return out;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Cfg = any;

/** The release's key → shape map implied by a config (SPEC.md §1–3). */
function expectedLayout(cfg: Cfg): Map<string, number[]> {
  const e = new Map<string, number[]>();
  const v = cfg.vision_config;
  const C = v.hidden_size;
  const p = v.patch_size;
  const grid = v.image_size / p;
  e.set('vision_model.embeddings.class_embedding', [1, 1, C]);
  e.set('vision_model.embeddings.patch_embedding.weight', [C, 3, p, p]);
  e.set('vision_model.embeddings.patch_embedding.bias', [C]);
  e.set('vision_model.embeddings.position_embedding', [1, grid * grid + 1, C]);
  const ln = v.norm_type === 'layer_norm';
  for (let i = 0; i < v.num_hidden_layers; i++) {
    const L = `vision_model.encoder.layers.${i}`;
    e.set(`${L}.attn.qkv.weight`, [3 * C, C]);
    if (v.qkv_bias) e.set(`${L}.attn.qkv.bias`, [3 * C]);
    if (v.qk_normalization) {
      e.set(`${L}.attn.q_norm.weight`, [C]);
      e.set(`${L}.attn.k_norm.weight`, [C]);
    }
    e.set(`${L}.attn.proj.weight`, [C, C]);
    e.set(`${L}.attn.proj.bias`, [C]);
    e.set(`${L}.mlp.fc1.weight`, [v.intermediate_size, C]);
    e.set(`${L}.mlp.fc1.bias`, [v.intermediate_size]);
    e.set(`${L}.mlp.fc2.weight`, [C, v.intermediate_size]);
    e.set(`${L}.mlp.fc2.bias`, [C]);
    for (const n of ['norm1', 'norm2']) {
      e.set(`${L}.${n}.weight`, [C]);
      if (ln) e.set(`${L}.${n}.bias`, [C]);
    }
    e.set(`${L}.ls1`, [C]);
    e.set(`${L}.ls2`, [C]);
  }
  const l = cfg.llm_config;
  const H = l.hidden_size;
  const C4 = C / (cfg.downsample_ratio * cfg.downsample_ratio);
  e.set('mlp1.0.weight', [C4]);
  e.set('mlp1.0.bias', [C4]);
  e.set('mlp1.1.weight', [H, C4]);
  e.set('mlp1.1.bias', [H]);
  e.set('mlp1.3.weight', [H, H]);
  e.set('mlp1.3.bias', [H]);
  const nH = l.num_attention_heads;
  const kv = l.num_key_value_heads ?? nH;
  const D = l.head_dim ?? H / nH;
  const F = l.intermediate_size;
  const V = l.vocab_size;
  const arch = l.architectures[0];
  const M = 'language_model.model';
  if (arch === 'InternLM2ForCausalLM') {
    e.set(`${M}.tok_embeddings.weight`, [V, H]);
    for (let i = 0; i < l.num_hidden_layers; i++) {
      const L = `${M}.layers.${i}`;
      e.set(`${L}.attention.wqkv.weight`, [(nH + 2 * kv) * D, H]);
      e.set(`${L}.attention.wo.weight`, [H, nH * D]);
      e.set(`${L}.feed_forward.w1.weight`, [F, H]);
      e.set(`${L}.feed_forward.w3.weight`, [F, H]);
      e.set(`${L}.feed_forward.w2.weight`, [H, F]);
      e.set(`${L}.attention_norm.weight`, [H]);
      e.set(`${L}.ffn_norm.weight`, [H]);
    }
    e.set(`${M}.norm.weight`, [H]);
    e.set('language_model.output.weight', [V, H]);
    return e;
  }
  e.set(`${M}.embed_tokens.weight`, [V, H]);
  for (let i = 0; i < l.num_hidden_layers; i++) {
    const L = `${M}.layers.${i}`;
    if (arch === 'Phi3ForCausalLM') {
      e.set(`${L}.self_attn.qkv_proj.weight`, [(nH + 2 * kv) * D, H]);
      e.set(`${L}.mlp.gate_up_proj.weight`, [2 * F, H]);
    } else {
      e.set(`${L}.self_attn.q_proj.weight`, [nH * D, H]);
      e.set(`${L}.self_attn.k_proj.weight`, [kv * D, H]);
      e.set(`${L}.self_attn.v_proj.weight`, [kv * D, H]);
      if (arch === 'Qwen2ForCausalLM') {
        e.set(`${L}.self_attn.q_proj.bias`, [nH * D]);
        e.set(`${L}.self_attn.k_proj.bias`, [kv * D]);
        e.set(`${L}.self_attn.v_proj.bias`, [kv * D]);
      }
      e.set(`${L}.mlp.gate_proj.weight`, [F, H]);
      e.set(`${L}.mlp.up_proj.weight`, [F, H]);
    }
    e.set(`${L}.self_attn.o_proj.weight`, [H, nH * D]);
    e.set(`${L}.mlp.down_proj.weight`, [H, F]);
    e.set(`${L}.input_layernorm.weight`, [H]);
    e.set(`${L}.post_attention_layernorm.weight`, [H]);
  }
  e.set(`${M}.norm.weight`, [H]);
  if (!l.tie_word_embeddings) e.set('language_model.lm_head.weight', [V, H]);
  return e;
}

const modelsDir = join(fixturesDir, 'models');
const families = existsSync(modelsDir) ? readdirSync(modelsDir).sort() : [];

test('the four fixture families exist', () => {
  expect(families).toEqual(['tiny-internlm2', 'tiny-phi3', 'tiny-qwen2', 'tiny-yi']);
});

describe.each(families)('%s', (family) => {
  const dir = join(modelsDir, family);
  const cfg: Cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));

  test('config.json has the release shape', () => {
    expect(cfg.architectures).toEqual(['InternVLChatModel']);
    expect(cfg.model_type).toBe('internvl_chat');
    expect(cfg).toMatchObject({ downsample_ratio: 0.5, ps_version: 'v2', select_layer: -1, dynamic_image_size: true, use_thumbnail: true });
    expect(['Hermes-2', 'internlm2-chat', 'phi3-chat']).toContain(cfg.template);
    expect(cfg.vision_config.architectures).toEqual(['InternVisionModel']);
    expect(cfg.force_image_size).toBe(cfg.vision_config.image_size);
  });

  test('every tensor is the release key, dtype and shape; nothing missing or extra', () => {
    const actual = readCheckpoint(dir);
    const expected = expectedLayout(cfg);
    expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [k, shape] of expected) {
      expect({ k, shape: actual.get(k)?.shape, dtype: actual.get(k)?.dtype }).toEqual({ k, shape, dtype: 'BF16' });
    }
  });

  test('vision style matches the family (6B style: RMSNorm + qk-norm, no qkv bias; 300M: LayerNorm + bias)', () => {
    const v = cfg.vision_config;
    if (family === 'tiny-yi') expect([v.norm_type, v.qk_normalization, v.qkv_bias]).toEqual(['rms_norm', true, false]);
    else expect([v.norm_type, v.qk_normalization, v.qkv_bias]).toEqual(['layer_norm', false, true]);
  });
});

test('at least one fixture is sharded with an index that matches its shards', () => {
  const sharded = families.filter((f) => existsSync(join(modelsDir, f, 'model.safetensors.index.json')));
  expect(sharded.length).toBeGreaterThan(0);
  for (const f of sharded) {
    const dir = join(modelsDir, f);
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const files = new Set(Object.values(index.weight_map));
    expect(files.size).toBeGreaterThan(1);
    const actual = readCheckpoint(dir);
    for (const [k, file] of Object.entries(index.weight_map)) expect(actual.get(k)?.file).toBe(file);
  }
});
