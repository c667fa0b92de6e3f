/**
 * Layer-to-GPU device maps (issue #10): which device holds the ViT, the projector, the token
 * embeddings, each decoder layer and the LM head, with the memory each device needs.
 *
 * - `'card'`: the model card's `split_model` rule (SPEC.md §7): per = ⌈L / (G − ½)⌉ layers per
 *   GPU, GPU 0 half of that, in order; the vision model, projector, embeddings, head, final
 *   norm and the last decoder layer on GPU 0.
 * - `'auto'`: vision, projector, embeddings and head on GPU 0; decoder layers (weights + their
 *   share of the KV cache) spread in order over the GPUs in proportion to the memory each has
 *   left after its fixed parts.
 * - an explicit list (one device per decoder layer) or {@link DeviceMapObject}.
 *
 * Devices are logical: device d runs on GPU `physical[d]` (default d). Two logical devices on
 * one GPU run every cross-device path on a single-GPU machine; on the CPU backend each logical
 * device is its own thread pool. Plans are made here, before anything loads, so
 * `internvl info --device-map` can print them; the engine checks the resolved map again.
 */
import { InternVLError } from './errors.js';
import type { NativeDeviceMap, NativeModelSpec } from './nativeTypes.js';

/** What `deviceMap` accepts. */
export type DeviceMapSpec = 'auto' | 'card' | number[] | DeviceMapObject;

/** An explicit map: `layers[i]` is decoder layer i's device. */
export interface DeviceMapObject {
  layers: number[];
  /** InternViT + projector (default 0). */
  vision?: number;
  /** Token embeddings (default 0). */
  embed?: number;
  /** Final norm + LM head (default 0). */
  head?: number;
  /** The GPU each logical device runs on (default: device d on GPU d). */
  physical?: number[];
}

/** One device's share of a plan, in bytes. */
export interface DevicePlanEntry {
  device: number;
  /** The GPU it runs on (CUDA), or undefined on the CPU backend. */
  gpu?: number;
  layers: number;
  /** What it holds besides decoder layers: 'vision', 'embed', 'head'. */
  modules: string[];
  weightBytes: number;
  kvBytes: number;
  /** Activations, GEMM workspace and the allocator's slack (an estimate). */
  workspaceBytes: number;
  /** Free memory of its GPU when the plan was made (CUDA only). */
  freeBytes?: number;
}

/** A resolved device map with the memory each device needs ({@link planDeviceMap}). */
export interface DevicePlan {
  map: Required<DeviceMapObject>;
  devices: DevicePlanEntry[];
}

/** What a device plan is made for: the GPUs' free memory, weight precision and KV cache size. */
export interface PlanOptions {
  /** Number of GPUs to plan for, with their free memory in bytes (index = GPU). Empty: CPU backend. */
  gpuFreeBytes: number[];
  dtype: 'bf16' | 'int8';
  kvCacheTokens: number;
  /** With dtype 'int8': which optional parts are int8 too. */
  quantize?: { vision?: boolean; projector?: boolean; head?: boolean };
}

/** Bytes of each part as the engine loads it (native/runtime/weights.cpp). */
export function moduleBytes(spec: NativeModelSpec, options: Pick<PlanOptions, 'dtype' | 'quantize'>) {
  const v = spec.vision;
  const l = spec.llm;
  const int8 = options.dtype === 'int8';
  const q = options.quantize ?? {};
  // a matmul weight [n, k]: bf16, or int8 + one fp32 scale per row
  const mat = (n: number, k: number, quantized: boolean) => (quantized ? n * k + 4 * n : 2 * n * k);
  const vec = (n: number) => 4 * n; // vectors are kept in fp32 (+ a bf16 mirror on CUDA)
  const C = v.hiddenSize;
  const grid = spec.tileSize / v.patchSize;
  const vitLayer =
    mat(3 * C, C, int8 && !!q.vision) + mat(C, C, int8 && !!q.vision) + mat(v.intermediateSize, C, int8 && !!q.vision) +
    mat(C, v.intermediateSize, int8 && !!q.vision) + vec(12 * C + v.intermediateSize) * 1.5;
  const s2 = 1 / (spec.downsampleRatio * spec.downsampleRatio);
  const H = l.hiddenSize;
  const vision =
    (v.numLayers - Math.max(0, -spec.selectLayer - 1)) * vitLayer + 2 * 3 * v.patchSize * v.patchSize * C + vec((2 + grid * grid) * C);
  const projector = mat(H, s2 * C, int8 && !!q.projector) + mat(H, H, int8 && !!q.projector) + vec(2 * s2 * C + 2 * H);
  const D = l.headDim;
  const layer =
    mat((l.numHeads + 2 * l.numKvHeads) * D, H, int8) + mat(H, l.numHeads * D, int8) + mat(2 * l.intermediateSize, H, int8) +
    mat(H, l.intermediateSize, int8) + vec(2 * H + (l.qkvBias ? (l.numHeads + 2 * l.numKvHeads) * D : 0)) * 1.5;
  const embed = 2 * l.vocabSize * H;
  const head = mat(l.vocabSize, H, int8 && !!q.head) + vec(H);
  const kvPerLayerPerToken = 2 * l.numKvHeads * D * 2;
  return { vision: vision + projector, embed, head, layer, kvPerLayerPerToken };
}

function fail(message: string): never {
  throw new InternVLError('ERR_INVALID_ARG', `deviceMap: ${message}`);
}

/** The model card's split (SPEC.md §7) of `numLayers` layers over `gpus` GPUs. */
export function cardDeviceMap(numLayers: number, gpus: number): Required<DeviceMapObject> {
  if (!Number.isInteger(gpus) || gpus < 1) fail(`'card' needs at least one GPU (got ${gpus})`);
  const layers: number[] = [];
  if (gpus === 1) {
    for (let i = 0; i < numLayers; i++) layers.push(0);
  } else {
    const per = Math.ceil(numLayers / (gpus - 0.5));
    const counts = Array.from({ length: gpus }, (_, g) => (g === 0 ? Math.ceil(per * 0.5) : per));
    for (let g = 0; g < gpus && layers.length < numLayers; g++) {
      for (let j = 0; j < counts[g] && layers.length < numLayers; j++) layers.push(g);
    }
    layers[numLayers - 1] = 0; // the card keeps the last layer with the head
  }
  return { layers, vision: 0, embed: 0, head: 0, physical: Array.from({ length: gpus }, (_, g) => g) };
}

/** Free-memory-balanced split: see the file comment. */
export function autoDeviceMap(spec: NativeModelSpec, options: PlanOptions): Required<DeviceMapObject> {
  const L = spec.llm.numLayers;
  const G = Math.max(1, options.gpuFreeBytes.length);
  const physical = Array.from({ length: G }, (_, g) => g);
  if (G === 1) return { layers: new Array<number>(L).fill(0), vision: 0, embed: 0, head: 0, physical };
  const m = moduleBytes(spec, options);
  // every layer costs the same (weights + its KV), so layer counts follow the room left
  const room = options.gpuFreeBytes.map((free, g) => {
    const fixed = workspaceBytes(spec, g === 0) + (g === 0 ? m.vision + m.embed + m.head : 0);
    return Math.max(0, free * 0.95 - fixed);
  });
  const total = room.reduce((a, b) => a + b, 0);
  // whole layers in proportion to room, the rounding remainder to the roomiest devices
  const share = room.map((r) => (total > 0 ? (r / total) * L : L / G));
  const counts = share.map((x) => Math.floor(x));
  let left = L - counts.reduce((a, b) => a + b, 0);
  const order = share.map((x, g) => [x - Math.floor(x), g] as const).sort((a, b) => b[0] - a[0]);
  for (let i = 0; left > 0; i = (i + 1) % G, left--) counts[order[i][1]]++;
  const layers: number[] = [];
  counts.forEach((c, g) => {
    for (let j = 0; j < c; j++) layers.push(g);
  });
  return { layers, vision: 0, embed: 0, head: 0, physical };
}

/** Activations + workspace a device needs beyond weights and KV (an estimate, stated as such). */
function workspaceBytes(spec: NativeModelSpec, holdsVision: boolean): number {
  const GiB = 2 ** 30;
  if (!holdsVision) return 0.5 * GiB;
  // one ViT pass over up to 16 tiles: a few [16·1025, width] and [16·1025, intermediate] bf16 buffers
  const tokens = 16 * ((spec.tileSize / spec.vision.patchSize) ** 2 + 1);
  return 1 * GiB + tokens * (6 * spec.vision.hiddenSize + 2 * spec.vision.intermediateSize) * 2;
}

/** Turns what the caller gave into an explicit map and checks it against the model. */
export function resolveDeviceMap(spec: NativeModelSpec, given: DeviceMapSpec, options: PlanOptions): Required<DeviceMapObject> {
  const L = spec.llm.numLayers;
  let map: Required<DeviceMapObject>;
  if (given === 'card') map = cardDeviceMap(L, Math.max(1, options.gpuFreeBytes.length));
  else if (given === 'auto') map = autoDeviceMap(spec, options);
  else if (Array.isArray(given)) map = { layers: given, vision: 0, embed: 0, head: 0, physical: [] };
  else if (given && typeof given === 'object' && Array.isArray(given.layers)) {
    map = { layers: given.layers, vision: given.vision ?? 0, embed: given.embed ?? 0, head: given.head ?? 0, physical: given.physical ?? [] };
  } else {
    throw new InternVLError('ERR_INVALID_ARG', `deviceMap must be 'auto', 'card', an array of devices per layer or { layers, vision?, embed?, head?, physical? } (got ${JSON.stringify(given)})`);
  }
  const isDevice = (d: unknown) => Number.isInteger(d) && (d as number) >= 0;
  if (map.layers.length !== L) fail(`layers lists ${map.layers.length} devices but the model has ${L} decoder layers (one device per layer)`);
  map.layers.forEach((d, i) => {
    if (!isDevice(d)) fail(`layer ${i} is assigned ${JSON.stringify(d)}, not a device index`);
  });
  for (const k of ['vision', 'embed', 'head'] as const) if (!isDevice(map[k])) fail(`${k} is assigned ${JSON.stringify(map[k])}, not a device index`);
  const used = Math.max(map.vision, map.embed, map.head, ...map.layers) + 1;
  for (let d = 0; d < used; d++) {
    if (d !== map.vision && d !== map.embed && d !== map.head && !map.layers.includes(d)) {
      fail(`device ${d} holds nothing (devices are numbered from 0 without gaps)`);
    }
  }
  if (map.physical.length === 0) map.physical = Array.from({ length: used }, (_, d) => d);
  if (map.physical.length < used) fail(`physical lists ${map.physical.length} GPUs for ${used} devices`);
  map.physical.forEach((p, d) => {
    if (!isDevice(p)) fail(`physical[${d}] is ${JSON.stringify(p)}, not a GPU index`);
  });
  const gpus = options.gpuFreeBytes.length;
  if (gpus > 0) {
    map.physical.slice(0, used).forEach((p, d) => {
      if (p >= gpus) fail(`device ${d} is GPU ${p}, but ${gpus} GPU${gpus === 1 ? ' is' : 's are'} available (0..${gpus - 1})`);
    });
  }
  return map;
}

/** The map with each device's memory; throws ERR_OOM naming the sizes when a GPU cannot hold its share. */
export function planDeviceMap(spec: NativeModelSpec, given: DeviceMapSpec, options: PlanOptions): DevicePlan {
  const map = resolveDeviceMap(spec, given, options);
  const m = moduleBytes(spec, options);
  const used = Math.max(map.vision, map.embed, map.head, ...map.layers) + 1;
  const devices: DevicePlanEntry[] = [];
  for (let d = 0; d < used; d++) {
    const layers = map.layers.filter((x) => x === d).length;
    const modules: string[] = [];
    let weightBytes = layers * m.layer;
    if (map.vision === d) (modules.push('vision'), (weightBytes += m.vision));
    if (map.embed === d) (modules.push('embed'), (weightBytes += m.embed));
    if (map.head === d) {
      modules.push('head');
      weightBytes += m.head;
    }
    const gpu = options.gpuFreeBytes.length > 0 ? map.physical[d] : undefined;
    devices.push({
      device: d,
      ...(gpu !== undefined ? { gpu, freeBytes: options.gpuFreeBytes[gpu] } : {}),
      layers,
      modules,
      weightBytes,
      kvBytes: layers * m.kvPerLayerPerToken * options.kvCacheTokens,
      workspaceBytes: workspaceBytes(spec, map.vision === d),
    });
  }
  // GPUs shared by several logical devices hold all their shares
  const needByGpu = new Map<number, number>();
  for (const e of devices) if (e.gpu !== undefined) needByGpu.set(e.gpu, (needByGpu.get(e.gpu) ?? 0) + e.weightBytes + e.kvBytes + e.workspaceBytes);
  for (const [gpu, need] of needByGpu) {
    const free = options.gpuFreeBytes[gpu];
    if (need > free) {
      throw new InternVLError(
        'ERR_OOM',
        `deviceMap: GPU ${gpu} needs ${gib(need)} (weights, KV cache for ${options.kvCacheTokens} tokens, workspace) but has ${gib(free)} free; ` +
          `spread the layers over more GPUs ('auto'), use dtype 'int8', or lower kvCacheTokens`,
      );
    }
  }
  return { map, devices };
}

const gib = (b: number) => (b >= 2 ** 30 || b === 0 ? `${(b / 2 ** 30).toFixed(1)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);

/** The plan as lines for `internvl info --device-map`. */
export function formatDevicePlan(plan: DevicePlan): string {
  const out = ['device  gpu  layers  holds                weights     KV cache    workspace   free'];
  for (const e of plan.devices) {
    out.push(
      `${String(e.device).padEnd(8)}${String(e.gpu ?? '-').padEnd(5)}${String(e.layers).padEnd(8)}${(e.modules.join(', ') || '-').padEnd(21)}` +
        `${gib(e.weightBytes).padEnd(12)}${gib(e.kvBytes).padEnd(12)}${gib(e.workspaceBytes).padEnd(12)}${e.freeBytes !== undefined ? gib(e.freeBytes) : '-'}`,
    );
  }
  return out.join('\n');
}

/** The resolved map in the form the addon takes. */
export function nativeDeviceMap(map: Required<DeviceMapObject>): NativeDeviceMap {
  return { layers: [...map.layers], vision: map.vision, embed: map.embed, head: map.head, physical: [...map.physical] };
}
