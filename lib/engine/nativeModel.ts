/**
 * A thin typed wrapper over the native model (native/napi/model.cpp): validates
 * options sharp-style, keeps the caller's stack on native errors, adds AbortSignal
 * support to generate(), and `dispose()` / `using`.
 */
import { InternVLError, fromNative, invalidArg } from '../errors.js';
import { readModelConfig, type ModelConfig } from '../config.js';
import { loadNative, runtimeInfo } from '../native.js';
import { nativeDeviceMap, planDeviceMap, type DeviceMapSpec, type DevicePlan } from '../deviceMap.js';
import { mixedStepsDefault } from './mixedStepsDefault.js';
import type {
  NativeGenerateRequest,
  NativeInt8Scheme,
  NativeLoadProgress,
  NativeQuantizeTargets,
  NativeWeightDType,
  NativeModel,
  NativeModelInfo,
  NativeModelStats,
  NativeSequenceResult,
} from '../nativeTypes.js';

export interface EngineLoadOptions {
  /** 'cpu' (default) or 'cuda' (device 0; the addon must be built with CUDA). */
  backend?: 'cpu' | 'cuda';
  /** CPU worker threads (default: all cores). */
  threads?: number;
  /** KV cache capacity in tokens shared by running sequences (default 8192). */
  kvCacheTokens?: number;
  /** Prompt tokens per prefill step (default 2048): longer prompts are prefilled in chunks between decode steps. */
  prefillChunkTokens?: number;
  /**
   * Keep finished sequences' KV pages and reuse the longest matching prefix (same ids and
   * image pixels) for later prompts: turn 2 of a chat does not re-run the ViT or re-prefill
   * the history. Cached pages are evicted when admission needs room. Default true.
   */
  prefixCache?: boolean;
  /**
   * Decode the running sequences inside each prefill step, one forward for both. Default: on for
   * CUDA, off on the CPU backend (mixedStepsDefault).
   */
  mixedSteps?: boolean;
  /**
   * Encode each request's image tiles on a vision thread as soon as it is submitted, on a
   * logical device of the vision encoder's own (its own stream on the same GPU), while the
   * engine thread keeps decoding; the prefill then takes the rows encoded ahead. Measured not
   * to lower time to first token under load (docs/ENGINE.md), hence off. Costs a second set of CUDA
   * workspaces and a second allocator on the GPU; on the CPU backend the vision gets a thread
   * pool of its own. Default false.
   */
  visionAhead?: boolean;
  /** Token id of <IMG_CONTEXT> (from the tokenizer). */
  imageContextTokenId: number;
  /** CPU kernels: 'auto' (AVX2/FMA when available, default) or 'plain' (the reference loops). */
  cpuKernels?: 'auto' | 'plain';
  /** An already-read config; read from `dir/config.json` otherwise. */
  config?: ModelConfig;
  /** Random weights of the config's shapes; no safetensors are read (benchmarks at release shapes). */
  dummyWeights?: boolean;
  /** 'bf16' (default: weights as stored) or 'int8' (W8A16 quantized at load, on either backend). */
  dtype?: NativeWeightDType;
  /** With dtype 'int8': 'per-channel' (default) or 'per-group-128' scales. */
  int8Scheme?: NativeInt8Scheme;
  /** With dtype 'int8': also quantize the ViT, the projector and/or the LM head (decoder linears always). */
  quantize?: NativeQuantizeTargets;
  /**
   * Called as weights load: first with 0 done of the totals, last with done == total,
   * never after load() settles. If it throws, the load fails with that error.
   */
  onProgress?: (progress: NativeLoadProgress) => void;
  /**
   * Split the model over several devices (lib/deviceMap.ts): 'auto' (by free GPU memory),
   * 'card' (the model card's split_model rule), one device per decoder layer, or
   * { layers, vision?, embed?, head?, physical? }. Default: one device.
   */
  deviceMap?: DeviceMapSpec;
}

export interface EngineGenerateOptions {
  onToken?: (sequence: number, tokenId: number) => void;
  signal?: AbortSignal;
}

export interface EngineGeneration {
  /** Resolves with one result per sequence; a cancelled run resolves with finishReason 'aborted'. */
  promise: Promise<NativeSequenceResult[]>;
  cancel(): void;
}

function checkInt(name: string, v: unknown, lo: number, hi: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw invalidArg(name, `integer between ${lo} and ${hi}`, v);
  }
}

export class EngineModel implements Disposable {
  readonly config: ModelConfig;
  private native: NativeModel | undefined;
  private readonly cachedInfo: NativeModelInfo;

  /** The device plan the model was loaded with (deviceMap given), per device. */
  readonly devicePlan: DevicePlan | undefined;

  private constructor(native: NativeModel, config: ModelConfig, devicePlan?: DevicePlan) {
    this.native = native;
    this.config = config;
    this.devicePlan = devicePlan;
    this.cachedInfo = native.info();
  }

  /** Loads `dir` (config.json + safetensors) onto the chosen backend. */
  static async load(dir: string, options: EngineLoadOptions): Promise<EngineModel> {
    const callerStack = new Error().stack;
    if (typeof dir !== 'string' || dir.length === 0) throw invalidArg('dir', 'non-empty string', dir);
    if (typeof options !== 'object' || options === null) throw invalidArg('options', 'object', options);
    const backend = options.backend ?? 'cpu';
    if (backend !== 'cpu' && backend !== 'cuda') throw invalidArg('options.backend', "'cpu' or 'cuda'", backend);
    if (options.threads !== undefined) checkInt('options.threads', options.threads, 1, 1024);
    if (options.kvCacheTokens !== undefined) checkInt('options.kvCacheTokens', options.kvCacheTokens, 1, 1 << 30);
    if (options.prefillChunkTokens !== undefined) checkInt('options.prefillChunkTokens', options.prefillChunkTokens, 1, 1 << 30);
    checkInt('options.imageContextTokenId', options.imageContextTokenId, 0, 2 ** 31 - 1);
    if (options.cpuKernels !== undefined && options.cpuKernels !== 'auto' && options.cpuKernels !== 'plain') {
      throw invalidArg('options.cpuKernels', "'auto' or 'plain'", options.cpuKernels);
    }
    if (options.dtype !== undefined && options.dtype !== 'bf16' && options.dtype !== 'int8') {
      throw invalidArg('options.dtype', "'bf16' or 'int8'", options.dtype);
    }
    if (options.int8Scheme !== undefined && options.int8Scheme !== 'per-channel' && options.int8Scheme !== 'per-group-128') {
      throw invalidArg('options.int8Scheme', "'per-channel' or 'per-group-128'", options.int8Scheme);
    }
    if (options.quantize !== undefined) {
      const q = options.quantize as unknown;
      if (typeof q !== 'object' || q === null || Array.isArray(q)) throw invalidArg('options.quantize', 'object', q);
      for (const [key, v] of Object.entries(q)) {
        if (key !== 'vision' && key !== 'projector' && key !== 'head') {
          throw new InternVLError(
            'ERR_INVALID_ARG',
            `Unknown key options.quantize.${key}: quantize takes vision, projector and head (decoder linears are always int8)`,
          );
        }
        if (v !== undefined && typeof v !== 'boolean') throw invalidArg(`options.quantize.${key}`, 'boolean', v);
      }
    }
    const { onProgress } = options;
    if (onProgress !== undefined && typeof onProgress !== 'function') throw invalidArg('options.onProgress', 'function', onProgress);
    const config = options.config ?? (await readModelConfig(dir));
    const addon = loadNative();
    let devicePlan: DevicePlan | undefined;
    if (options.deviceMap !== undefined) {
      const gpus = backend === 'cuda' ? runtimeInfo().cuda.devices : [];
      devicePlan = planDeviceMap(config.spec, options.deviceMap, {
        gpuFreeBytes: gpus.map((d) => d.freeMemory),
        dtype: options.dtype ?? 'bf16',
        kvCacheTokens: options.kvCacheTokens ?? 8192,
        ...(options.quantize !== undefined ? { quantize: options.quantize } : {}),
      });
    }
    // Steps that arrive after the promise settles are dropped; a throwing callback fails the load.
    let settled = false;
    let callbackError: { error: unknown } | undefined;
    const progress = (p: NativeLoadProgress) => {
      if (settled || callbackError) return;
      try {
        onProgress?.(p);
      } catch (error) {
        callbackError = { error };
      }
    };
    try {
      const loading = addon.loadModel(dir, config.spec, {
        backend,
        threads: options.threads,
        kvCacheTokens: options.kvCacheTokens,
        ...(options.prefillChunkTokens !== undefined ? { prefillChunkTokens: options.prefillChunkTokens } : {}),
        ...(options.prefixCache !== undefined ? { prefixCache: options.prefixCache } : {}),
        mixedSteps: options.mixedSteps ?? mixedStepsDefault(backend),
        ...(options.visionAhead !== undefined ? { visionAhead: options.visionAhead } : {}),
        imageContextTokenId: options.imageContextTokenId,
        cpuKernels: options.cpuKernels,
        ...(options.dummyWeights !== undefined ? { dummyWeights: options.dummyWeights } : {}),
        ...(options.dtype !== undefined ? { dtype: options.dtype } : {}),
        ...(options.int8Scheme !== undefined ? { int8Scheme: options.int8Scheme } : {}),
        ...(options.quantize !== undefined ? { quantize: { ...options.quantize } } : {}),
        ...(onProgress !== undefined ? { onProgress: progress } : {}),
        ...(devicePlan !== undefined ? { deviceMap: nativeDeviceMap(devicePlan.map) } : {}),
      });
      const native = await loading.finally(() => (settled = true));
      if (callbackError) {
        native.dispose();
        throw callbackError.error;
      }
      return new EngineModel(native, config, devicePlan);
    } catch (e) {
      if (callbackError && e === callbackError.error) throw e;
      throw fromNative(e, callerStack);
    }
  }

  get disposed(): boolean {
    return this.native === undefined;
  }

  private get model(): NativeModel {
    if (!this.native) throw new InternVLError('ERR_DISPOSED', 'the model has been disposed');
    return this.native;
  }

  info(): NativeModelInfo {
    this.model; // throws when disposed
    return { ...this.cachedInfo };
  }

  /** Live engine-thread numbers: free KV blocks, queued / running requests, the largest decode batch so far. */
  stats(): NativeModelStats {
    return this.model.stats();
  }

  /** pixels [tiles, 3, S, S] → image embeddings [tiles, numImageToken, hidden]. */
  async encodeImages(pixelValues: Float32Array, tiles: number): Promise<Float32Array> {
    const callerStack = new Error().stack;
    try {
      return await this.model.encodeImages(pixelValues, tiles);
    } catch (e) {
      throw fromNative(e, callerStack);
    }
  }

  /** pixels [tiles, 3, S, S] → raw ViT output [tiles, 1 + patches, vitHidden]. */
  async encodeVit(pixelValues: Float32Array, tiles: number): Promise<Float32Array> {
    const callerStack = new Error().stack;
    try {
      return await this.model.encodeVit(pixelValues, tiles);
    } catch (e) {
      throw fromNative(e, callerStack);
    }
  }

  /**
   * Benchmarks: device time of `reps` image encodes (pixel upload + ViT + projector, the
   * embeddings left on the device as a PyTorch caller has them) and of the upload alone.
   */
  async timeEncode(pixelValues: Float32Array, tiles: number, reps: number): Promise<{ encodeSeconds: number[]; uploadSeconds: number[] }> {
    const callerStack = new Error().stack;
    try {
      return await this.model.timeEncode(pixelValues, tiles, reps);
    } catch (e) {
      throw fromNative(e, callerStack);
    }
  }

  /**
   * Generates for every sequence of the request together. Returns at once: the request
   * joins the engine thread's continuous batch (concurrent calls run together). Never
   * throws for a cancellation: aborted sequences resolve with finishReason 'aborted'.
   */
  generate(request: NativeGenerateRequest, options: EngineGenerateOptions = {}): EngineGeneration {
    const callerStack = new Error().stack;
    const { onToken, signal } = options;
    if (onToken !== undefined && typeof onToken !== 'function') throw invalidArg('onToken', 'function', onToken);
    let gen;
    try {
      gen = this.model.generate(request, onToken);
    } catch (e) {
      throw fromNative(e, callerStack);
    }
    const cancel = () => gen.cancel();
    if (signal) {
      if (signal.aborted) cancel();
      else signal.addEventListener('abort', cancel, { once: true });
    }
    const promise = gen.promise.then(
      (r) => {
        signal?.removeEventListener('abort', cancel);
        return r;
      },
      (e: unknown) => {
        signal?.removeEventListener('abort', cancel);
        throw fromNative(e, callerStack);
      },
    );
    return { promise, cancel };
  }

  /** Frees weights and the KV cache; running and queued generations are cancelled (they resolve 'aborted'). */
  dispose(): void {
    const n = this.native;
    this.native = undefined;
    n?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Reads config.json and loads the model: `await loadEngineModel(dir, { imageContextTokenId })`. */
export function loadEngineModel(dir: string, options: EngineLoadOptions): Promise<EngineModel> {
  return EngineModel.load(dir, options);
}
