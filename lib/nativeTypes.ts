/**
 * The addon's surface, typed once by hand. Only lib/native.ts loads it; everything
 * else goes through the typed wrappers so a native signature change breaks here.
 */
export interface NativeCudaDevice {
  index: number;
  name: string;
  computeCapability: string;
  multiprocessors: number;
  totalMemory: number;
  freeMemory: number;
}

export interface NativeCudaReport {
  compiled: boolean;
  driverVersion?: number;
  runtimeVersion?: number;
  /** major·10000 + minor·100 + patch of the linked cuBLAS */
  cublasVersion?: number;
  cublasLtVersion?: number;
  devices: NativeCudaDevice[];
  problem?: string;
}

/** What this build of the addon can run on: version, backends, CUDA devices with free memory. */
export interface NativeInfo {
  version: string;
  backends: Array<'cpu' | 'cuda'>;
  cuda: NativeCudaReport;
  hardwareConcurrency: number;
}

// ---- the model engine (native/runtime, native/napi/model*.cpp) ----

/** InternViT hyper-parameters (vision_config). */
export interface NativeVisionSpec {
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numLayers: number;
  /** The checkpoint's image size: its position-embedding grid is imageSize / patchSize. */
  imageSize: number;
  patchSize: number;
  normType: 'layer_norm' | 'rms_norm';
  eps: number;
  qkvBias: boolean;
  qkNorm: boolean;
}

export type NativeRopeScaling =
  | { type: 'none' }
  /** InternLM2 dynamic NTK: applies only past maxPositionEmbeddings. */
  | { type: 'dynamic'; factor: number }
  /** Phi3 su / longrope: short factors up to originalMaxPositionEmbeddings, long beyond; cos/sin × attentionFactor. */
  | { type: 'su'; originalMaxPositionEmbeddings: number; shortFactor: number[]; longFactor: number[]; attentionFactor: number };

/** Decoder hyper-parameters (llm_config), normalized across families. */
export interface NativeLlmSpec {
  family: 'llama' | 'internlm2' | 'qwen2' | 'phi3';
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** From config.json; the engine takes the real size from the embedding tensor. */
  vocabSize: number;
  rmsEps: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Biases on q/k/v projections (Qwen2; attention_bias / bias elsewhere). */
  qkvBias: boolean;
  /** Bias on the output projection (Llama attention_bias, InternLM2 bias). */
  oBias: boolean;
  ropeScaling: NativeRopeScaling;
}

/** What lib/config.ts makes of config.json for the engine. */
export interface NativeModelSpec {
  vision: NativeVisionSpec;
  llm: NativeLlmSpec;
  /** force_image_size: pixel size of every tile. */
  tileSize: number;
  downsampleRatio: number;
  /** select_layer: -1 = the last ViT layer. */
  selectLayer: number;
  /** Image tokens per tile after pixel shuffle. */
  numImageToken: number;
}

export interface NativeLoadOptions {
  backend: 'cpu' | 'cuda';
  /** Worker threads (default: all cores). */
  threads?: number;
  /** KV cache capacity in tokens, shared by all running sequences (default 8192). */
  kvCacheTokens?: number;
  /** Prompt tokens per prefill step across admitted requests (default 2048); longer prompts are chunked. */
  prefillChunkTokens?: number;
  /** Keep finished sequences' KV and reuse matching prefixes (multi-round chat). Default true. */
  prefixCache?: boolean;
  /** Run the running sequences' decode step inside each prefill step (one forward for both). Default false. */
  mixedSteps?: boolean;
  /**
   * The vision encoder on a logical device of its own (own stream, on the CPU backend own
   * threads), where a vision thread encodes each request's tiles as soon as it is submitted,
   * while the engine thread keeps decoding. Default false.
   */
  visionAhead?: boolean;
  imageContextTokenId: number;
  /** CPU kernels: 'auto' (AVX2/FMA when the CPU has them, default) or 'plain' (the reference loops). */
  cpuKernels?: 'auto' | 'plain';
  /** Random weights of the config's shapes instead of reading the checkpoint (benchmarks). */
  dummyWeights?: boolean;
  /** Weight precision: 'bf16' (as stored, default) or 'int8' (W8A16, quantized at load, on either backend). */
  dtype?: NativeWeightDType;
  /** int8 scales: one per output channel (default) or per output channel and 128 input columns. */
  int8Scheme?: NativeInt8Scheme;
  /** With dtype 'int8', also quantize these (decoder linears always are). Default: none. */
  quantize?: NativeQuantizeTargets;
  /** Called on the JS thread as weights load; a step may arrive after the promise settles. */
  onProgress?: (progress: NativeLoadProgress) => void;
  /** A resolved device map (lib/deviceMap.ts); absent: everything on one device. */
  deviceMap?: NativeDeviceMap;
}

/** Which logical device holds what; logical device d runs on GPU physical[d] (CUDA). */
export interface NativeDeviceMap {
  /** Device of each decoder layer. */
  layers: number[];
  vision: number;
  embed: number;
  head: number;
  physical: number[];
}

/** How far a load is: checkpoint tensors and their stored bytes handed to the backend so far. */
export interface NativeLoadProgress {
  tensorsDone: number;
  tensorsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export type NativeWeightDType = 'bf16' | 'int8';
export type NativeInt8Scheme = 'per-channel' | 'per-group-128';
export interface NativeQuantizeTargets {
  /** ViT encoder layers' linears (qkv, proj, fc1, fc2). */
  vision?: boolean;
  /** The projector (mlp1) linears. */
  projector?: boolean;
  /** The LM head (a tied head gets its own int8 copy; the embedding table stays bf16). */
  head?: boolean;
}

/** What quantizeInt8 returns: the CPU backend's int8 weight (and its matmul with x when given). */
export interface NativeInt8Weight {
  /** q [rows, cols] */
  q: Int8Array;
  /** fp32 scales [rows, groups]: groups = 1 (per channel) or ceil(cols / 128). */
  scales: Float32Array;
  /** y [m, rows] = x · (q · scale)ᵀ when x was given. */
  y?: Float32Array;
}

export interface NativeSampling {
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  seed: number;
}

export interface NativeSequenceInput {
  /** Full prompt ids (image placeholders already expanded to <IMG_CONTEXT> runs). */
  inputIds: Int32Array;
  /** [tiles, 3, S, S] normalized, this sequence's images in prompt order. */
  pixelValues?: Float32Array;
  tiles?: number;
}

export interface NativeGenerateRequest {
  sequences: NativeSequenceInput[];
  maxNewTokens: number;
  eosTokenIds: number[];
  sampling: NativeSampling;
  /** Last prompt position's logits (fp32) per sequence, for parity tests. */
  returnPromptLogits?: boolean;
}

export interface NativeSequenceResult {
  /** Generated ids; an eos token that ended the sequence is included. */
  tokenIds: Int32Array;
  finishReason: 'eos' | 'length' | 'aborted';
  promptTokens: number;
  promptLogits?: Float32Array;
  /** Engine side, from the request's submission to the engine: until it was admitted (KV reserved), ms. Absent if it never was. */
  queueMs?: number;
  /** Engine side, from the request's submission to the engine until this sequence's first token was chosen, ms. Absent if none was. */
  firstTokenMs?: number;
}

export interface NativeGeneration {
  promise: Promise<NativeSequenceResult[]>;
  cancel(): void;
}

export interface NativeModelInfo {
  family: 'llama' | 'internlm2' | 'qwen2' | 'phi3';
  vocabSize: number;
  hiddenSize: number;
  numImageToken: number;
  imageSize: number;
  imageContextTokenId: number;
  contextLength: number;
  backend: 'cpu' | 'cuda';
  /** e.g. "cpu, avx2+fma kernels, 2 threads". */
  backendDetail: string;
  kvBlockSize: number;
  kvBlocks: number;
  /** InternViT width C and tokens per tile (CLS + patches). */
  vitHiddenSize: number;
  vitTokens: number;
}

/** Live numbers from the engine thread (continuous batching scheduler). */
export interface NativeModelStats {
  kvBlocks: number;
  kvFreeBlocks: number;
  /** Requests waiting for KV blocks (FIFO). */
  queuedRequests: number;
  runningRequests: number;
  /** Unfinished sequences of the running requests. */
  runningSequences: number;
  /** The most sequences / distinct requests one decode step has carried since load. */
  maxBatchSequences: number;
  maxBatchRequests: number;
  decodeSteps: number;
  /** Forwards over prompt chunks (a prompt longer than prefillChunkTokens takes several). */
  prefillSteps: number;
  /** Of those, the ones that also carried the running sequences' decode step (mixedSteps). */
  mixedSteps: number;
  /** Pages kept by finished sequences for prefix reuse (included in kvFreeBlocks: admission evicts them). */
  cachedBlocks: number;
  /** Prompt tokens taken from cached prefixes instead of being prefilled. */
  prefixHitTokens: number;
  /** Tiles run through the ViT by generation requests. */
  vitTiles: number;
  /** Tiles the vision thread ran through the ViT ahead of their request's prefill (visionAhead), since load. */
  visionAheadTiles: number;
  completedRequests: number;
  /** Host wall time in decode steps' engine call (forward, greedy argmax on the device, sampled rows' logits download), cumulative ms. */
  decodeForwardMs: number;
  /** Host wall time in the host sampler over decode steps' sampled rows (doSample), cumulative ms. */
  decodeSampleMs: number;
  /** Host wall time delivering decode steps' tokens (callbacks, stop rules, freeing pages), cumulative ms. */
  decodeEmitMs: number;
  /** Sum over admitted requests of the time from submission to admission (KV reserved), ms. */
  queueWaitMs: number;
  /** Requests admitted since load (the count behind queueWaitMs). */
  admittedRequests: number;
  /** Sum over sequences that produced a first token of the time from their request's submission to it, ms. */
  firstTokenWaitMs: number;
  /** Sequences that produced a first token (divide the sum above by it for the mean). */
  firstTokens: number;
  /** Per device the model uses (empty on the CPU backend), as the CUDA allocator accounts it. */
  deviceMemory: NativeDeviceMemory[];
}

/** One device's memory as the CUDA allocator accounts it (`stats().deviceMemory`). */
export interface NativeDeviceMemory {
  /** Live weights. */
  weightBytes: number;
  /** Live tensors and scratch, weights and KV cache included. */
  inUseBytes: number;
  /** The most inUseBytes has been since load began (true peak, load-time scratch included). */
  peakBytes: number;
  /** Freed blocks the allocator keeps for reuse. */
  cachedBytes: number;
}

export interface NativeModel {
  info(): NativeModelInfo;
  /** Live scheduler numbers (free KV blocks, queue, largest batch so far). */
  stats(): NativeModelStats;
  /** [tiles, numImageToken, hidden] after mlp1. */
  encodeImages(pixelValues: Float32Array, tiles: number): Promise<Float32Array>;
  /** [tiles, 1+patches, vitHidden] raw ViT output (tests). */
  encodeVit(pixelValues: Float32Array, tiles: number): Promise<Float32Array>;
  /** Benchmarks: seconds per run of the encode path with the result left on the device, and of the pixel upload alone. */
  timeEncode(pixelValues: Float32Array, tiles: number, reps: number): Promise<{ encodeSeconds: number[]; uploadSeconds: number[] }>;
  generate(req: NativeGenerateRequest, onToken?: (sequence: number, tokenId: number) => void): NativeGeneration;
  /** Frees weights and KV cache; cancels and waits for running generations. Later calls throw ERR_DISPOSED. */
  dispose(): void;
}

/** Test hook: the engine's sampler on one logits vector. */
export interface NativeSamplerProbe {
  /** Scores after the logits processors (probabilities when sampling). */
  scores: Float32Array;
  /** `draws` successive choices from one PRNG stream seeded with sampling.seed. */
  tokens: Int32Array;
}

export interface NativeAddon {
  info(): NativeInfo;
  bf16ToF32(input: Uint16Array): Promise<Float32Array>;
  loadModel(dir: string, spec: NativeModelSpec, options: NativeLoadOptions): Promise<NativeModel>;
  /** rgb [h, w, 3] → normalized tiles [T, 3, S, S] (PIL-exact resize, crops, thumbnail last); into `out` when given. */
  preprocessTiles(rgb: Uint8Array, width: number, height: number, cols: number, rows: number, tileSize: number, thumbnail: boolean, out?: Float32Array): Promise<Float32Array>;
  /** A Float32Array whose memory was obtained and touched off the JS thread. */
  allocFloat32(length: number): Promise<Float32Array>;
  /** The same tiles before normalization, [T, S, S, 3] uint8. */
  tilesU8(rgb: Uint8Array, width: number, height: number, cols: number, rows: number, tileSize: number, thumbnail: boolean): Promise<Uint8Array>;
  /** PIL-exact bicubic resize of rgb [h, w, 3]. */
  resizeRgb(rgb: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Promise<Uint8Array>;
  samplerProbe(logits: Float32Array, generated: Int32Array, sampling: NativeSampling, draws: number): NativeSamplerProbe;
  /** The CPU backend's int8 quantization of bf16 weights [rows, cols] (tests); with x [m, cols] also its matmul. */
  quantizeInt8(
    weights: Uint16Array,
    rows: number,
    cols: number,
    scheme: NativeInt8Scheme,
    x?: Float32Array,
    m?: number,
    kernels?: 'auto' | 'plain',
  ): NativeInt8Weight;
}
