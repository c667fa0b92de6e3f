/**
 * What `internvl info -m DIR` says about a checkpoint: architecture sizes, parameter
 * counts and the memory it needs, from config.json and the safetensors headers (only the
 * headers are read). Without safetensors files the counts are computed from the config.
 *
 * Memory rules (as native/runtime/weights.cpp loads): bf16 = the stored bytes; int8
 * (W8A16, per-channel) = every decoder linear as 1 byte per weight + one fp32 scale per
 * row, everything else as stored. KV cache per token = 2 (K, V) · layers · kv heads ·
 * head dim · element size (bf16 on CUDA, f32 on the CPU backend).
 */
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelConfig } from '../config.js';

export interface ParamGroup {
  params: number;
  bf16Bytes: number;
  int8Bytes: number;
}

export interface ModelSummary {
  /** 'headers': exact, from the safetensors headers; 'config': computed from config.json shapes. */
  source: 'headers' | 'config';
  vocabRows: number;
  vision: ParamGroup;
  projector: ParamGroup;
  language: ParamGroup;
  total: ParamGroup;
  /** KV cache bytes per 1000 tokens: bf16 elements (CUDA) and f32 (CPU backend). */
  kvPer1kTokens: { bf16: number; f32: number };
}

interface TensorEntry {
  name: string;
  shape: number[];
  bytes: number;
}

async function readHeader(path: string): Promise<TensorEntry[]> {
  const fh = await open(path, 'r');
  try {
    const len = Buffer.alloc(8);
    await fh.read(len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const buf = Buffer.alloc(n);
    await fh.read(buf, 0, n, 8);
    const header = JSON.parse(buf.toString('utf8')) as Record<string, { shape: number[]; data_offsets: [number, number] }>;
    return Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .map(([name, t]) => ({ name, shape: t.shape, bytes: t.data_offsets[1] - t.data_offsets[0] }));
  } finally {
    await fh.close();
  }
}

/** Every tensor's name, shape and stored bytes, or undefined when the directory has no safetensors. */
async function checkpointTensors(dir: string): Promise<TensorEntry[] | undefined> {
  try {
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const files = [...new Set(Object.values(index.weight_map))];
    return (await Promise.all(files.map((f) => readHeader(join(dir, f))))).flat();
  } catch {
    try {
      return await readHeader(join(dir, 'model.safetensors'));
    } catch {
      return undefined;
    }
  }
}

const isDecoderLinear = (t: TensorEntry) => t.shape.length === 2 && /^language_model\.model\.layers\.\d+\./.test(t.name);

/** The tensors a config implies, as [name, shape] (bf16), when no checkpoint files are there. */
function tensorsFromConfig(config: ModelConfig): TensorEntry[] {
  const { vision: v, llm: l } = config.spec;
  const out: TensorEntry[] = [];
  const add = (name: string, ...shape: number[]) => out.push({ name, shape, bytes: 2 * shape.reduce((a, b) => a * b, 1) });
  const C = v.hiddenSize, I = v.intermediateSize, g = v.imageSize / v.patchSize;
  add('vision_model.embeddings', C + (1 + g * g) * C + C + C * 3 * v.patchSize * v.patchSize); // cls, position, patch bias + weight
  const vitVectors = (v.qkvBias ? 3 * C : 0) + (v.qkNorm ? 2 * C : 0) + C + I + C + (v.normType === 'layer_norm' ? 4 : 2) * C + 2 * C;
  for (let i = 0; i < v.numLayers; i++) add(`vision_model.encoder.layers.${i}`, 3 * C * C + C * C + 2 * I * C + vitVectors);
  const s = Math.round(1 / config.spec.downsampleRatio);
  const P = s * s * C, H = l.hiddenSize, F = l.intermediateSize, D = l.headDim;
  add('mlp1', P * H + H * H + 2 * P + 2 * H);
  add('language_model.model.embed_tokens.weight', l.vocabSize, H);
  for (let i = 0; i < l.numLayers; i++) {
    const L = `language_model.model.layers.${i}.`;
    add(`${L}q`, l.numHeads * D, H);
    add(`${L}k`, l.numKvHeads * D, H);
    add(`${L}v`, l.numKvHeads * D, H);
    add(`${L}o`, H, l.numHeads * D);
    add(`${L}gate`, F, H);
    add(`${L}up`, F, H);
    add(`${L}down`, H, F);
    add(`${L}vectors`, 2 * H + (l.qkvBias ? (l.numHeads + 2 * l.numKvHeads) * D : 0));
  }
  add('language_model.model.norm.weight', H);
  if (!l.tieWordEmbeddings) add('language_model.lm_head.weight', l.vocabSize, H);
  return out;
}

function group(tensors: TensorEntry[]): ParamGroup {
  let params = 0, bf16Bytes = 0, int8Bytes = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    params += n;
    bf16Bytes += t.bytes;
    int8Bytes += isDecoderLinear(t) ? n + 4 * t.shape[0] : t.bytes;
  }
  return { params, bf16Bytes, int8Bytes };
}

/** Parameter counts and memory of the checkpoint in `dir` whose config is `config`. */
export async function summarizeModel(dir: string, config: ModelConfig): Promise<ModelSummary> {
  const fromFiles = await checkpointTensors(dir);
  const tensors = fromFiles ?? tensorsFromConfig(config);
  const embed = tensors.find((t) => /^language_model\.model\.(embed_tokens|tok_embeddings)\.weight$/.test(t.name));
  const l = config.spec.llm;
  const kvElements = 2 * l.numLayers * l.numKvHeads * l.headDim * 1000;
  return {
    source: fromFiles ? 'headers' : 'config',
    vocabRows: embed?.shape[0] ?? l.vocabSize,
    vision: group(tensors.filter((t) => t.name.startsWith('vision_model.'))),
    projector: group(tensors.filter((t) => t.name.startsWith('mlp1'))),
    language: group(tensors.filter((t) => t.name.startsWith('language_model.'))),
    total: group(tensors),
    kvPer1kTokens: { bf16: 2 * kvElements, f32: 4 * kvElements },
  };
}

/** 940_000_000 → "0.94 B", 4_500_000 → "4.5 M". */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}
