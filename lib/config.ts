/**
 * config.json of an InternVL2 checkpoint → a typed, validated {@link ModelConfig}:
 * the numbers the native engine needs ({@link NativeModelSpec}) plus what the other
 * layers use (chat template, tiling limits, thumbnail). Every problem is an
 * InternVLError('ERR_CONFIG') naming the field, e.g.
 * `config.json: llm_config.num_attention_heads must be a positive integer (got "32")`.
 *
 * Optional fields default the way the reference Python config classes do
 * (InternVLChatConfig, InternVisionConfig, LlamaConfig, InternLM2Config, Qwen2Config,
 * Phi3Config); sizes the model cannot run without are required.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InternVLError } from './errors.js';
import type { NativeLlmSpec, NativeModelSpec, NativeRopeScaling, NativeVisionSpec } from './nativeTypes.js';
import { templateNames } from './text/templates.js';

export const LLM_ARCHITECTURES = {
  LlamaForCausalLM: 'llama',
  InternLM2ForCausalLM: 'internlm2',
  Qwen2ForCausalLM: 'qwen2',
  Phi3ForCausalLM: 'phi3',
} as const;

export type LlmArchitecture = keyof typeof LLM_ARCHITECTURES;
export type LlmFamily = (typeof LLM_ARCHITECTURES)[LlmArchitecture];

/** What config.json says, validated and normalized ({@link readModelConfig}). */
export interface ModelConfig {
  /** Chat template named by config.json `template` (see lib/text/templates.ts). */
  template: string;
  /** `system_message` when config.json sets one. */
  systemMessage?: string;
  llmArchitecture: LlmArchitecture;
  family: LlmFamily;
  /** Tile size in pixels (force_image_size, else vision_config.image_size). */
  forceImageSize: number;
  dynamicImageSize: boolean;
  useThumbnail: boolean;
  minDynamicPatch: number;
  maxDynamicPatch: number;
  downsampleRatio: number;
  psVersion: 'v2';
  selectLayer: number;
  /** <IMG_CONTEXT> tokens per tile: (tile / patch)² · ratio². */
  numImageToken: number;
  /** llm_config.max_position_embeddings. */
  contextLength: number;
  /** What the native engine is loaded with. */
  spec: NativeModelSpec;
}

type Json = unknown;
type JsonObject = Record<string, Json>;

/**
 * Upper bounds far above every released model (InternVL2-76B: hidden 8192, 80 layers,
 * vocabulary 128k, context 32k; InternViT-6B: 45 layers, width 3200), low enough that
 * every product of two of them fits a double exactly and an int64 in the engine.
 */
const MAX_SIZE = 1 << 24; // widths, vocabulary, positions
const MAX_LAYERS = 1024;
const MAX_IMAGE = 1 << 14; // image and patch sizes in pixels: (size / patch)² · width stays below 2^53

class Reader {
  constructor(private readonly source: string) {}

  fail(field: string, what: string, got?: Json): never {
    const shown = got === undefined ? '' : ` (got ${describe(got)})`;
    throw new InternVLError('ERR_CONFIG', `${this.source}: ${field} ${what}${shown}`);
  }

  object(o: JsonObject, key: string, path: string): JsonObject {
    const v = o[key];
    if (v === undefined || v === null) this.fail(path + key, 'is missing');
    if (!isObject(v)) this.fail(path + key, 'must be an object', v);
    return v;
  }

  /**
   * A required positive (or non-negative) integer, at most `max` (default MAX_SIZE): the
   * engine sizes loops and tensors from these, so a config.json cannot ask for 10^15
   * layers (a load that allocates until the process dies) or shapes that overflow.
   */
  int(o: JsonObject, key: string, path: string, opts: { min?: number; def?: number; max?: number } = {}): number {
    const min = opts.min ?? 1;
    const max = opts.max ?? MAX_SIZE;
    const v = o[key] ?? opts.def;
    if (v === undefined || v === null) this.fail(path + key, 'is missing');
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      this.fail(path + key, min === 1 ? 'must be a positive integer' : `must be an integer >= ${min}`, v);
    }
    if (v > max) this.fail(path + key, `must be at most ${max}`, v);
    return v;
  }

  /** Any integer (select_layer). */
  anyInt(o: JsonObject, key: string, path: string, def: number): number {
    const v = o[key] ?? def;
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(path + key, 'must be an integer', v);
    return v;
  }

  positive(o: JsonObject, key: string, path: string, def?: number): number {
    const v = o[key] ?? def;
    if (v === undefined || v === null) this.fail(path + key, 'is missing');
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(path + key, 'must be a positive number', v);
    return v;
  }

  bool(o: JsonObject, key: string, path: string, def: boolean): boolean {
    const v = o[key] ?? def;
    if (typeof v !== 'boolean') this.fail(path + key, 'must be true or false', v);
    return v;
  }

  string(o: JsonObject, key: string, path: string, def?: string): string {
    const v = o[key] ?? def;
    if (v === undefined || v === null) this.fail(path + key, 'is missing');
    if (typeof v !== 'string') this.fail(path + key, 'must be a string', v);
    return v;
  }

  numbers(o: JsonObject, key: string, path: string, length: number): number[] {
    const v = o[key];
    if (!Array.isArray(v)) this.fail(path + key, `must be an array of ${length} numbers`, v);
    if (v.length !== length) this.fail(path + key, `must have ${length} entries (head_dim / 2)`, `${v.length} entries`);
    v.forEach((x, i) => {
      if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) this.fail(`${path}${key}[${i}]`, 'must be a positive number', x);
    });
    return v as number[];
  }
}

function isObject(v: Json): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: Json): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function readVision(r: Reader, v: JsonObject): NativeVisionSpec {
  const p = 'vision_config.';
  const act = r.string(v, 'hidden_act', p, 'gelu');
  if (act !== 'gelu') r.fail(p + 'hidden_act', "must be 'gelu' (exact GELU, the only InternViT activation)", act);
  const normType = r.string(v, 'norm_type', p, 'rms_norm');
  if (normType !== 'layer_norm' && normType !== 'rms_norm') r.fail(p + 'norm_type', "must be 'layer_norm' or 'rms_norm'", normType);
  const channels = r.int(v, 'num_channels', p, { def: 3 });
  if (channels !== 3) r.fail(p + 'num_channels', 'must be 3', channels);
  const spec: NativeVisionSpec = {
    hiddenSize: r.int(v, 'hidden_size', p),
    intermediateSize: r.int(v, 'intermediate_size', p),
    numHeads: r.int(v, 'num_attention_heads', p),
    numLayers: r.int(v, 'num_hidden_layers', p, { max: MAX_LAYERS }),
    imageSize: r.int(v, 'image_size', p, { def: 224, max: MAX_IMAGE }),
    patchSize: r.int(v, 'patch_size', p, { def: 14, max: MAX_IMAGE }),
    normType,
    eps: r.positive(v, 'layer_norm_eps', p, 1e-6),
    qkvBias: r.bool(v, 'qkv_bias', p, false),
    qkNorm: r.bool(v, 'qk_normalization', p, true),
  };
  if (spec.hiddenSize % spec.numHeads !== 0) {
    r.fail(p + 'hidden_size', `must be a multiple of num_attention_heads (${spec.numHeads})`, spec.hiddenSize);
  }
  if (spec.imageSize % spec.patchSize !== 0) {
    r.fail(p + 'image_size', `must be a multiple of patch_size (${spec.patchSize})`, spec.imageSize);
  }
  return spec;
}

function ropeScalingOf(r: Reader, l: JsonObject, family: LlmFamily, headDim: number, maxPos: number): NativeRopeScaling {
  const p = 'llm_config.';
  const rs = l.rope_scaling;
  if (rs === undefined || rs === null) return { type: 'none' };
  if (!isObject(rs)) r.fail(p + 'rope_scaling', 'must be an object or null', rs);
  const type = rs.type ?? rs.rope_type;
  const rp = p + 'rope_scaling.';
  if (type === 'default') return { type: 'none' };
  if (type === 'dynamic' && (family === 'internlm2' || family === 'llama')) {
    const factor = r.positive(rs, 'factor', rp);
    if (factor < 1) r.fail(rp + 'factor', 'must be at least 1', factor);
    return { type: 'dynamic', factor };
  }
  if ((type === 'su' || type === 'longrope') && family === 'phi3') {
    const half = headDim / 2;
    const originalMax = r.int(l, 'original_max_position_embeddings', p);
    const shortFactor = r.numbers(rs, 'short_factor', rp, half);
    const longFactor = r.numbers(rs, 'long_factor', rp, half);
    let attentionFactor: number;
    if (rs.attention_factor !== undefined && rs.attention_factor !== null) {
      attentionFactor = r.positive(rs, 'attention_factor', rp);
    } else {
      // transformers' _compute_longrope_parameters / Phi3SuScaledRotaryEmbedding
      const scale = maxPos / originalMax;
      attentionFactor = scale <= 1 ? 1 : Math.sqrt(1 + Math.log(scale) / Math.log(originalMax));
    }
    return { type: 'su', originalMaxPositionEmbeddings: originalMax, shortFactor, longFactor, attentionFactor };
  }
  return r.fail(rp + 'type', `${describe(type as Json)} is not supported for ${family} (supported: ${family === 'phi3' ? "'su', 'longrope'" : family === 'qwen2' ? 'none' : "'dynamic'"})`);
}

function readLlm(r: Reader, l: JsonObject): { spec: NativeLlmSpec; architecture: LlmArchitecture } {
  const p = 'llm_config.';
  const archs = l.architectures;
  if (!Array.isArray(archs) || archs.length === 0 || typeof archs[0] !== 'string') {
    r.fail(p + 'architectures', 'must be a non-empty array naming the LLM class', archs as Json);
  }
  const architecture = archs[0] as string;
  if (!(architecture in LLM_ARCHITECTURES)) {
    r.fail(p + 'architectures', `names an unknown architecture; supported: ${Object.keys(LLM_ARCHITECTURES).join(', ')}`, architecture);
  }
  const arch = architecture as LlmArchitecture;
  const family = LLM_ARCHITECTURES[arch];

  const act = r.string(l, 'hidden_act', p, 'silu');
  if (act !== 'silu') r.fail(p + 'hidden_act', "must be 'silu'", act);
  const hiddenSize = r.int(l, 'hidden_size', p);
  const numHeads = r.int(l, 'num_attention_heads', p);
  const numKvHeads = r.int(l, 'num_key_value_heads', p, { def: numHeads });
  const headDim = r.int(l, 'head_dim', p, { def: Math.floor(hiddenSize / numHeads) });
  const maxPos = r.int(l, 'max_position_embeddings', p, { def: family === 'internlm2' ? 2048 : 4096 });
  if (l.head_dim === undefined && hiddenSize % numHeads !== 0) {
    r.fail(p + 'hidden_size', `must be a multiple of num_attention_heads (${numHeads})`, hiddenSize);
  }
  if (numHeads % numKvHeads !== 0) {
    r.fail(p + 'num_attention_heads', `must be a multiple of num_key_value_heads (${numKvHeads})`, numHeads);
  }
  if (headDim % 2 !== 0) r.fail(p + 'head_dim', 'must be even for rotary embeddings', headDim);
  if (l.partial_rotary_factor !== undefined && l.partial_rotary_factor !== null && l.partial_rotary_factor !== 1 && l.partial_rotary_factor !== 1.0) {
    r.fail(p + 'partial_rotary_factor', 'other than 1 is not supported', l.partial_rotary_factor);
  }
  if (l.mlp_bias === true) r.fail(p + 'mlp_bias', 'true is not supported');

  let qkvBias = false;
  let oBias = false;
  if (family === 'qwen2') {
    qkvBias = true;
    if (r.bool(l, 'use_sliding_window', p, false)) r.fail(p + 'use_sliding_window', 'true is not supported');
  } else if (family === 'internlm2') {
    qkvBias = oBias = r.bool(l, 'bias', p, true);
  } else {
    qkvBias = oBias = r.bool(l, 'attention_bias', p, false);
  }
  if (family === 'phi3' && typeof l.sliding_window === 'number' && l.sliding_window < maxPos) {
    r.fail(p + 'sliding_window', `smaller than max_position_embeddings (${maxPos}) is not supported`, l.sliding_window);
  }

  const spec: NativeLlmSpec = {
    family,
    hiddenSize,
    intermediateSize: r.int(l, 'intermediate_size', p),
    numLayers: r.int(l, 'num_hidden_layers', p, { max: MAX_LAYERS }),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: r.int(l, 'vocab_size', p),
    rmsEps: r.positive(l, 'rms_norm_eps', p, 1e-6),
    ropeTheta: r.positive(l, 'rope_theta', p, 10000),
    maxPositionEmbeddings: maxPos,
    tieWordEmbeddings: r.bool(l, 'tie_word_embeddings', p, false),
    qkvBias,
    oBias,
    ropeScaling: ropeScalingOf(r, l, family, headDim, maxPos),
  };
  return { spec, architecture: arch };
}

/** Validates a parsed config.json. `source` names the file in messages. */
export function parseModelConfig(json: Json, source = 'config.json'): ModelConfig {
  const r: Reader = new Reader(source);
  if (!isObject(json)) r.fail('the top level', 'must be a JSON object', json);
  const template = r.string(json, 'template', '');
  if (!templateNames().includes(template)) {
    r.fail('template', `is not a known chat template; supported: ${templateNames().join(', ')}`, template);
  }
  let systemMessage: string | undefined;
  if (json.system_message !== undefined && json.system_message !== null) systemMessage = r.string(json, 'system_message', '');

  const vision = readVision(r, r.object(json, 'vision_config', ''));
  const { spec: llm, architecture } = readLlm(r, r.object(json, 'llm_config', ''));

  const forceImageSize = json.force_image_size == null ? vision.imageSize : r.int(json, 'force_image_size', '', { max: MAX_IMAGE });
  if (forceImageSize % vision.patchSize !== 0) {
    r.fail('force_image_size', `must be a multiple of vision_config.patch_size (${vision.patchSize})`, forceImageSize);
  }
  const downsampleRatio = r.positive(json, 'downsample_ratio', '', 0.5);
  const scale = Math.round(1 / downsampleRatio);
  const grid = forceImageSize / vision.patchSize;
  if (downsampleRatio > 1 || Math.abs(1 / scale - downsampleRatio) > 1e-9 || grid % scale !== 0) {
    r.fail('downsample_ratio', `must be 1/n with n dividing the ${grid}×${grid} patch grid`, downsampleRatio);
  }
  const psVersion = r.string(json, 'ps_version', '', 'v1');
  if (psVersion !== 'v2') r.fail('ps_version', "must be 'v2' (InternVL2's pixel shuffle)", psVersion);
  const selectLayer = r.anyInt(json, 'select_layer', '', -1);
  if (selectLayer >= 0 || selectLayer < -vision.numLayers) {
    r.fail('select_layer', `must be between -${vision.numLayers} and -1`, selectLayer);
  }
  const minDynamicPatch = r.int(json, 'min_dynamic_patch', '', { def: 1 });
  const maxDynamicPatch = r.int(json, 'max_dynamic_patch', '', { def: 6 });
  if (maxDynamicPatch < minDynamicPatch) {
    r.fail('max_dynamic_patch', `must be at least min_dynamic_patch (${minDynamicPatch})`, maxDynamicPatch);
  }
  const numImageToken = Math.floor(grid * grid * downsampleRatio * downsampleRatio);

  return {
    template,
    systemMessage,
    llmArchitecture: architecture,
    family: llm.family,
    forceImageSize,
    dynamicImageSize: r.bool(json, 'dynamic_image_size', '', false),
    useThumbnail: r.bool(json, 'use_thumbnail', '', false),
    minDynamicPatch,
    maxDynamicPatch,
    downsampleRatio,
    psVersion: 'v2',
    selectLayer,
    numImageToken,
    contextLength: llm.maxPositionEmbeddings,
    spec: { vision, llm, tileSize: forceImageSize, downsampleRatio, selectLayer, numImageToken },
  };
}

function parseText(text: string, path: string): ModelConfig {
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InternVLError('ERR_CONFIG', `${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  return parseModelConfig(json, 'config.json');
}

function missing(dir: string, e: unknown): InternVLError {
  const code = (e as NodeJS.ErrnoException)?.code;
  const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${(e as Error).message})`;
  return new InternVLError('ERR_CONFIG', `${join(dir, 'config.json')} ${why}`, { cause: e });
}

/** Reads and validates `dir/config.json`. */
export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw missing(dir, e);
  }
  return parseText(text, path);
}

/** Synchronous {@link readModelConfig}. */
export function readModelConfigSync(dir: string): ModelConfig {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw missing(dir, e);
  }
  return parseText(text, path);
}
