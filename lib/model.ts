/**
 * InternVL: load a released InternVL2 checkpoint directory and chat with it.
 *
 * ```ts
 * await using model = await InternVL.load('./InternVL2-8B');
 * const { response, history } = await model.chat({ question: 'Describe this image.', images: ['cat.jpg'] });
 * for await (const text of model.stream({ question: 'And its colour?', history })) process.stdout.write(text);
 * ```
 */
import { performance } from 'node:perf_hooks';
import { type ModelConfig, readModelConfig } from './config.js';
import type {
  BatchChatRequest,
  BatchChatResult,
  ChatRequest,
  ChatResult,
  FinishReason,
  HistoryInput,
  HistoryTurn,
  ImageOptions,
} from './chatTypes.js';
import { InternVLError, invalidArg } from './errors.js';
import { type ResolvedGeneration, resolveGeneration } from './generation.js';
import { EngineModel } from './engine/nativeModel.js';
import type { DeviceMapSpec } from './deviceMap.js';
import { runtimeInfo } from './native.js';
import type { NativeLoadProgress, NativeModelInfo, NativeModelStats, NativeSequenceResult } from './nativeTypes.js';
import { IMG_CONTEXT, buildPrompt, cleanResponse } from './text/conversation.js';
import { type ChatTemplate, DEFAULT_SYSTEM_MESSAGE, getTemplate } from './text/templates.js';
import { TextStreamFilter } from './text/textStream.js';
import { type Tokenizer, loadTokenizer } from './text/tokenizer.js';
import { AsyncQueue } from './util/asyncQueue.js';
import { type PullOptions, resolveModel } from './hub/pull.js';
import { isHubModelRef, parseModelRef } from './hub/repoId.js';
import { type PreparedImages, labelSeparateImages, prepareImages } from './imageInputs.js';

/** Where a model runs: 'cpu', 'cuda', or 'auto' (CUDA when the addon has it and a GPU is usable). */
export type Backend = 'cpu' | 'cuda' | 'auto';

/** Options of {@link InternVL.load}: backend, precision, memory, device map, progress. */
export interface LoadOptions {
  /** Where to run: 'auto' (default) picks CUDA when a device is usable, else the CPU. */
  backend?: Backend;
  /** CPU threads (default: all cores). */
  threads?: number;
  /** KV cache capacity in tokens across all sequences (default: the engine's choice). */
  kvCacheTokens?: number;
  /** System message for every chat (default: config `system_message`, else the reference's). */
  systemMessage?: string;
  /** Defaults for image tiling (else from config.json). */
  imageOptions?: ImageOptions;
  /** Weight precision: 'bf16' (as stored, default) or 'int8' (W8A16 quantized at load, on either backend). */
  dtype?: 'bf16' | 'int8';
  /** With dtype 'int8': 'per-channel' (default) or 'per-group-128' scales. */
  int8Scheme?: 'per-channel' | 'per-group-128';
  /** With dtype 'int8': also quantize the ViT, the projector and/or the LM head (decoder linears always). */
  quantize?: { vision?: boolean; projector?: boolean; head?: boolean };
  /** Called as the weights load (first 0 done, last done == total, all before load() resolves). */
  onProgress?: (progress: LoadProgress) => void;
  /**
   * Split the model over several GPUs: 'auto' (balance by free memory), 'card' (the model
   * card's split_model), one device per decoder layer, or { layers, vision?, embed?, head?,
   * physical? } (see lib/deviceMap.ts). Default: one GPU.
   */
  deviceMap?: DeviceMapSpec;
  /** Prompt tokens per prefill step (default 2048): longer prompts are prefilled in chunks between decode steps. */
  prefillChunkTokens?: number;
  /**
   * Keep each finished chat's KV cache pages and reuse them when a later prompt starts the
   * same way (same history, same images): turn 2 skips the ViT and the history's prefill.
   * Pages are evicted (least recently used) when new requests need room. Default true.
   */
  prefixCache?: boolean;
  /**
   * While new requests are being prefilled, the running ones take their next decode step inside
   * the same forward instead of a second one after it, so an arrival costs one pass over the
   * weights less. Same tokens either way. Default: on for CUDA (at 32 streaming clients it cut
   * the TTFT p99 by a third at 40B shapes, with 2-5% more tokens/s, and by up to half at 8B,
   * with 0-8% fewer), off on the CPU backend.
   */
  mixedSteps?: boolean;
  /**
   * Run the vision encoder (InternViT + projector) on a thread and a CUDA stream of its own,
   * encoding each request's images as soon as it arrives while the running requests keep
   * decoding. Measured on an H200 with 32 clients, it did not lower time to first token (worse
   * at 40B shapes: the ViT, slowed by the decode steps it shares the GPU with, still comes
   * first), hence off. Costs a second set of CUDA workspaces and a second allocator on the GPU;
   * on the CPU backend the vision gets a thread pool of its own. Default false.
   */
  visionAhead?: boolean;
  /**
   * Random weights of config.json's shapes instead of the safetensors (benchmarks and load
   * tests at release shapes without downloading a checkpoint; the answers are noise).
   */
  dummyWeights?: boolean;
  /**
   * For a Hub model id (`org/name` or `org/name@revision`, when no local path of that name
   * exists): endpoint, cache, token, offline mode, download progress and abort. Defaults
   * come from HF_ENDPOINT, HF_HUB_CACHE / HF_HOME, HF_TOKEN and HF_HUB_OFFLINE (lib/hub).
   */
  hub?: HubLoadOptions;
}

/** How {@link InternVL.load} fetches a Hub model (see lib/hub/pull.ts). */
export type HubLoadOptions = Omit<PullOptions, 'files' | 'fallbackToCache' | 'freeBytes'>;

/** How far {@link InternVL.load} is: checkpoint tensors and their stored bytes placed on the device. */
export interface LoadProgress {
  tensorsDone: number;
  tensorsTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** Where these weights go: 'cpu' or 'cuda:N'. */
  device: string;
}

/** What {@link InternVL.renderChat} returns. */
export interface RenderedChat {
  /** The prompt before `<image>` expansion. */
  prompt: string;
  /** The prompt with image placeholders expanded. */
  expanded: string;
  /** The question as it enters history (with the automatic `<image>\n` prefix when added). */
  question: string;
  inputIds: number[];
  numPatchesList: number[];
}

interface SequenceJob {
  inputIds: number[];
  pixelValues?: Float32Array;
  tiles: number;
}

interface SequenceOutcome {
  tokenIds: number[];
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  queueMs?: number;
  firstTokenMs?: number;
}

/** A request's engine-side timings: its slowest sequence's (they share the submission). */
function engineTimings(outcomes: SequenceOutcome[]): { queueMs?: number; firstTokenMs?: number } {
  const pick = (k: 'queueMs' | 'firstTokenMs') => {
    const xs = outcomes.map((o) => o[k]).filter((x): x is number => x !== undefined);
    return xs.length === outcomes.length && xs.length > 0 ? { [k]: Math.max(...xs) } : {};
  };
  return { ...pick('queueMs'), ...pick('firstTokenMs') };
}

function resolveBackend(backend: Backend): 'cpu' | 'cuda' {
  if (backend === 'cpu') return 'cpu';
  const info = runtimeInfo();
  const hasCuda = info.backends.includes('cuda');
  if (backend === 'cuda' && !hasCuda) {
    throw new InternVLError('ERR_CUDA', `backend 'cuda' requested but no CUDA device is usable: ${info.cuda.problem ?? 'unknown reason'}`);
  }
  return hasCuda ? 'cuda' : 'cpu';
}

function withDevice(onProgress: (p: LoadProgress) => void, device: string) {
  if (typeof onProgress !== 'function') throw invalidArg('onProgress', 'function', onProgress);
  return (p: NativeLoadProgress) => onProgress({ ...p, device });
}

function normalizeHistory(history: HistoryInput | undefined): HistoryTurn[] {
  if (history === undefined) return [];
  if (!Array.isArray(history)) throw invalidArg('history', 'array of {question, answer} or [question, answer]', history);
  return history.map((t, i) => {
    const [question, answer] = Array.isArray(t) ? t : [(t as HistoryTurn)?.question, (t as HistoryTurn)?.answer];
    if (typeof question !== 'string' || typeof answer !== 'string') {
      throw invalidArg(`history[${i}]`, '{question: string, answer: string} or [string, string]', t);
    }
    return { question, answer };
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new InternVLError('ERR_ABORTED', 'The operation was aborted');
}

/** An InternVL2 model loaded in this process: chat, stream and batch chat over the native engine. */
export class InternVL implements AsyncDisposable {
  /** The checkpoint directory read (for a Hub model, its snapshot in the cache). */
  readonly dir: string;
  /** The Hub model id it came from (`org/name`), when loaded by one. */
  readonly repo: string | undefined;
  /** config.json, validated. */
  readonly config: ModelConfig;
  /** The checkpoint's tokenizer (encode/decode, special tokens). */
  readonly tokenizer: Tokenizer;
  /** The chat template config.json names. */
  readonly template: ChatTemplate;
  /** What the engine loaded: backend (and its detail), sizes, KV cache blocks. */
  readonly info: NativeModelInfo;
  private readonly engine: EngineModel;
  private readonly systemMessage: string;
  private readonly imageDefaults: ImageOptions;
  private readonly sepId: number;
  private disposed = false;

  private constructor(dir: string, repo: string | undefined, config: ModelConfig, tokenizer: Tokenizer, engine: EngineModel, options: LoadOptions) {
    this.dir = dir;
    this.repo = repo;
    this.config = config;
    this.tokenizer = tokenizer;
    this.template = getTemplate(config.template);
    this.engine = engine;
    this.info = engine.info();
    this.systemMessage = options.systemMessage ?? config.systemMessage ?? DEFAULT_SYSTEM_MESSAGE;
    this.imageDefaults = {
      maxTiles: config.maxDynamicPatch,
      minTiles: config.minDynamicPatch,
      useThumbnail: config.useThumbnail,
      ...options.imageOptions,
    };
    const sep = tokenizer.tokenToId(this.template.sep);
    if (sep === undefined) {
      throw new InternVLError('ERR_CHECKPOINT', `The tokenizer has no token for the template separator ${this.template.sep}`);
    }
    this.sepId = sep;
  }

  /**
   * Loads a checkpoint directory (config.json, safetensors, tokenizer files), or a Hub
   * model id such as `OpenGVLab/InternVL2-8B[@revision]` resolved through the local cache
   * (downloading what is missing), onto the chosen backend.
   */
  static async load(model: string, options: LoadOptions = {}): Promise<InternVL> {
    if (typeof model !== 'string' || model.length === 0) throw invalidArg('model', 'non-empty string (a checkpoint directory or Hub model id)', model);
    if (typeof options !== 'object' || options === null) throw invalidArg('options', 'object', options);
    const backend = resolveBackend(options.backend ?? 'auto');
    if (options.threads !== undefined && (!Number.isInteger(options.threads) || options.threads < 1 || options.threads > 1024)) {
      throw invalidArg('threads', 'integer between 1 and 1024', options.threads);
    }
    if (options.kvCacheTokens !== undefined && (!Number.isInteger(options.kvCacheTokens) || options.kvCacheTokens < 16)) {
      throw invalidArg('kvCacheTokens', 'integer of at least 16', options.kvCacheTokens);
    }
    // Options are checked before a Hub model downloads (possibly gigabytes).
    const repo = isHubModelRef(model) ? parseModelRef(model)?.repo : undefined;
    const dir = repo !== undefined ? await resolveModel(model, options.hub ?? {}) : model;
    const config = await readModelConfig(dir);
    getTemplate(config.template); // unknown template fails before any weights load
    const tokenizer = await loadTokenizer(dir);
    const imageContextTokenId = tokenizer.tokenToId(IMG_CONTEXT);
    if (imageContextTokenId === undefined) {
      throw new InternVLError('ERR_CHECKPOINT', `The tokenizer in ${dir} has no ${IMG_CONTEXT} token`);
    }
    const engine = await EngineModel.load(dir, {
      backend,
      imageContextTokenId,
      config,
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
      ...(options.kvCacheTokens !== undefined ? { kvCacheTokens: options.kvCacheTokens } : {}),
      ...(options.dtype !== undefined ? { dtype: options.dtype } : {}),
      ...(options.deviceMap !== undefined ? { deviceMap: options.deviceMap } : {}),
      ...(options.prefillChunkTokens !== undefined ? { prefillChunkTokens: options.prefillChunkTokens } : {}),
      ...(options.prefixCache !== undefined ? { prefixCache: options.prefixCache } : {}),
      ...(options.mixedSteps !== undefined ? { mixedSteps: options.mixedSteps } : {}),
      ...(options.visionAhead !== undefined ? { visionAhead: options.visionAhead } : {}),
      ...(options.dummyWeights !== undefined ? { dummyWeights: options.dummyWeights } : {}),
      ...(options.int8Scheme !== undefined ? { int8Scheme: options.int8Scheme } : {}),
      ...(options.quantize !== undefined ? { quantize: options.quantize } : {}),
      ...(options.onProgress !== undefined ? { onProgress: withDevice(options.onProgress, backend === 'cuda' ? 'cuda:0' : 'cpu') } : {}),
    });
    try {
      return new InternVL(dir, repo, config, tokenizer, engine, options);
    } catch (e) {
      engine.dispose();
      throw e;
    }
  }

  /**
   * The prompt a chat call would run, without running it: the rendered template,
   * its `<image>`-expanded form and the token ids (useful to count tokens or debug).
   */
  async renderChat(request: ChatRequest): Promise<RenderedChat> {
    this.checkAlive();
    const { rendered } = await this.prepareChat(request);
    return rendered;
  }

  /** One round of chat, as the reference `model.chat()`; resolves with the response and the new history. */
  async chat(request: ChatRequest): Promise<ChatResult> {
    const t0 = performance.now();
    this.checkAlive();
    const generation = resolveGeneration(request?.generation);
    const { rendered, history, images } = await this.prepareChat(request);
    const t1 = performance.now();
    const job: SequenceJob = {
      inputIds: rendered.inputIds,
      tiles: images.tiles,
      ...(images.tiles > 0 ? { pixelValues: images.pixelValues } : {}),
    };
    const [outcome] = await this.generate([job], generation, request.signal, request.partialOnAbort ?? false, request.onToken);
    const t2 = performance.now();
    return {
      response: outcome.text,
      history: [...history, { question: rendered.question, answer: outcome.text }],
      usage: {
        promptTokens: outcome.promptTokens,
        completionTokens: outcome.tokenIds.length,
        totalTokens: outcome.promptTokens + outcome.tokenIds.length,
      },
      finishReason: outcome.finishReason,
      tokenIds: outcome.tokenIds,
      imageTiles: images.numPatchesList,
      timings: { preprocessMs: t1 - t0, generateMs: t2 - t1, totalMs: t2 - t0, ...engineTimings([outcome]) },
    };
  }

  private async prepareChat(request: ChatRequest): Promise<{ rendered: RenderedChat; history: HistoryTurn[]; images: PreparedImages }> {
    if (typeof request !== 'object' || request === null) throw invalidArg('request', 'object', request);
    if (typeof request.question !== 'string') throw invalidArg('question', 'string', request.question);
    const history = normalizeHistory(request.history);
    request.signal?.throwIfAborted();
    // Each image is at least one tile: refuse what cannot fit before decoding any of them
    // (thousands of images would otherwise be decoded and tiled, gigabytes, to be refused).
    const imageCount = Array.isArray(request.images) ? request.images.length : 0;
    const minImageTokens = imageCount * this.info.numImageToken;
    if (minImageTokens >= this.info.contextLength) {
      throw new InternVLError(
        'ERR_CONTEXT_OVERFLOW',
        `${imageCount} images need at least ${minImageTokens} image tokens (${this.info.numImageToken} per tile, one tile each) but the context holds ${this.info.contextLength}`,
      );
    }
    const images = await this.prepareChatImages(request);
    const built = buildPrompt({
      template: this.template,
      systemMessage: request.systemMessage ?? this.systemMessage,
      question: history.length === 0 ? labelSeparateImages(request.question, images.numPatchesList.length) : request.question,
      history,
      numPatchesList: images.numPatchesList,
      numImageToken: this.info.numImageToken,
    });
    const rendered: RenderedChat = { ...built, inputIds: this.tokenizer.encode(built.expanded), numPatchesList: images.numPatchesList };
    return { rendered, history, images };
  }

  /**
   * Streams the response text as it is generated. Leaving the loop early (break,
   * return, throw) cancels generation. The final result is available as `.result`.
   */
  stream(request: ChatRequest): AsyncIterableIterator<string, void, undefined> & { result: Promise<ChatResult> } {
    const controller = new AbortController();
    const signal = request.signal ? AbortSignal.any([request.signal, controller.signal]) : controller.signal;
    const queue = new AsyncQueue<string>(() => controller.abort(new InternVLError('ERR_ABORTED', 'stream closed by the consumer')));
    const result = this.chat({
      ...request,
      signal,
      onToken: (text, id) => {
        queue.push(text);
        request.onToken?.(text, id);
      },
    });
    result.then(
      () => queue.end(),
      (e) => (controller.signal.aborted ? queue.end() : queue.fail(e)),
    );
    result.catch(() => undefined); // the iterator reports the error; `.result` still rejects for whoever awaits it
    return Object.assign(queue, { result });
  }

  /** Several independent single-turn questions at once, as the reference `batch_chat()`. */
  async batchChat(request: BatchChatRequest): Promise<BatchChatResult> {
    const t0 = performance.now();
    this.checkAlive();
    if (typeof request !== 'object' || request === null) throw invalidArg('request', 'object', request);
    const { questions } = request;
    if (!Array.isArray(questions) || questions.length === 0 || questions.some((q) => typeof q !== 'string')) {
      throw invalidArg('questions', 'non-empty array of strings', questions);
    }
    const generation = resolveGeneration(request.generation);
    const perQuestion = await this.prepareBatchImages(request);
    const t1 = performance.now();
    const system = request.systemMessage ?? this.systemMessage;
    const jobs = questions.map((question, i): SequenceJob => {
      const img = perQuestion[i];
      const built = buildPrompt({
        template: this.template,
        systemMessage: system,
        question,
        history: [],
        numPatchesList: img.tiles > 0 ? [img.tiles] : [],
        numImageToken: this.info.numImageToken,
      });
      return {
        inputIds: this.tokenizer.encode(built.expanded),
        tiles: img.tiles,
        ...(img.tiles > 0 ? { pixelValues: img.pixelValues } : {}),
      };
    });
    const outcomes = await this.generate(jobs, generation, request.signal, false);
    const t2 = performance.now();
    return {
      responses: outcomes.map((o) => o.text),
      results: outcomes.map((o, i) => ({
        response: o.text,
        usage: { promptTokens: o.promptTokens, completionTokens: o.tokenIds.length, totalTokens: o.promptTokens + o.tokenIds.length },
        finishReason: o.finishReason,
        tokenIds: o.tokenIds,
        imageTiles: perQuestion[i].tiles > 0 ? [perQuestion[i].tiles] : [],
      })),
      timings: { preprocessMs: t1 - t0, generateMs: t2 - t1, totalMs: t2 - t0, ...engineTimings(outcomes) },
    };
  }

  /**
   * Live engine numbers: KV blocks (free includes pages cached for prefix reuse), queued and
   * running requests, decode / prefill steps, prefix-cache hits, tiles encoded, and device
   * memory per GPU.
   */
  stats(): NativeModelStats {
    this.checkAlive();
    return this.engine.stats();
  }

  /** Frees weights and caches. In-flight calls are cancelled; later calls reject with ERR_DISPOSED. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.engine.dispose();
  }

  /** `await using model = await InternVL.load(...)` disposes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }

  private checkAlive(): void {
    if (this.disposed) throw new InternVLError('ERR_DISPOSED', 'This model has been disposed');
  }

  private imageOptions(overrides: ImageOptions | undefined): ImageOptions & { imageSize: number } {
    return { ...this.imageDefaults, ...overrides, imageSize: this.info.imageSize };
  }

  private async prepareChatImages(request: ChatRequest): Promise<PreparedImages> {
    return prepareImages({
      images: request.images,
      pixelValues: request.pixelValues,
      numPatchesList: request.numPatchesList,
      combine: request.combineImages ?? false,
      labelQuestion: request.question,
      imageSize: this.info.imageSize,
      options: this.imageOptions(request.imageOptions),
      signal: request.signal,
      ...this.tileBudget(),
    });
  }

  /** Tiles that can fit the context at all (text needs at least one token): checked from image headers. */
  private tileBudget(): { tileBudget: number; budgetContext: { numImageToken: number; contextLength: number } } {
    const { numImageToken, contextLength } = this.info;
    return { tileBudget: Math.floor((contextLength - 1) / numImageToken), budgetContext: { numImageToken, contextLength } };
  }

  private async prepareBatchImages(request: BatchChatRequest): Promise<PreparedImages[]> {
    const n = request.questions.length;
    if (request.pixelValues !== undefined) {
      const list = request.numPatchesList;
      if (!Array.isArray(list) || list.length !== n) {
        throw invalidArg('numPatchesList', `array of ${n} tile counts (one per question) with pixelValues`, list);
      }
      const tileSize = 3 * this.info.imageSize * this.info.imageSize;
      const out: PreparedImages[] = [];
      let offset = 0;
      for (const tiles of list) {
        out.push(await prepareImages({ pixelValues: request.pixelValues.subarray(offset * tileSize, (offset + tiles) * tileSize), numPatchesList: [tiles], combine: false, labelQuestion: '', imageSize: this.info.imageSize, options: this.imageOptions(request.imageOptions), signal: request.signal }));
        offset += tiles;
      }
      if (offset * tileSize !== request.pixelValues.length) {
        throw new InternVLError('ERR_INVALID_ARG', `numPatchesList sums to ${offset} tiles but pixelValues holds ${request.pixelValues.length / tileSize}`);
      }
      return out;
    }
    const images = request.images ?? [];
    if (!Array.isArray(images) || (images.length !== 0 && images.length !== n)) {
      throw invalidArg('images', `array of ${n} images (or null entries), one per question`, images);
    }
    return Promise.all(
      Array.from({ length: n }, (_, i) =>
        prepareImages({
          images: images[i] == null ? [] : [images[i] as NonNullable<(typeof images)[number]>],
          combine: false,
          labelQuestion: '',
          imageSize: this.info.imageSize,
          options: this.imageOptions(request.imageOptions),
          signal: request.signal,
          ...this.tileBudget(),
        }),
      ),
    );
  }

  /**
   * Runs the native generation for some sequences, decoding as tokens arrive so
   * stop strings end generation early and callers can stream text.
   */
  private async generate(
    jobs: SequenceJob[],
    gen: ResolvedGeneration,
    signal: AbortSignal | undefined,
    partialOnAbort: boolean,
    onText?: (text: string, tokenId: number) => void,
  ): Promise<SequenceOutcome[]> {
    for (const job of jobs) {
      if (job.inputIds.length >= this.info.contextLength) {
        throw new InternVLError(
          'ERR_CONTEXT_OVERFLOW',
          `The prompt has ${job.inputIds.length} tokens but the context holds ${this.info.contextLength}`,
        );
      }
    }
    // Generation stops at the context length, and at what the KV cache can hold for these
    // sequences together (the engine reserves prompt + new tokens up front): finishReason
    // 'length' then, rather than a refusal. If even the prompts do not fit, the engine says so.
    const bs = this.info.kvBlockSize;
    const promptTotal = jobs.reduce((a, j) => a + j.inputIds.length, 0);
    const kvRoom = Math.floor(((this.info.kvBlocks - jobs.length) * bs - promptTotal) / jobs.length) + 1;
    const maxNewTokens = Math.max(
      1,
      Math.min(gen.maxNewTokens, kvRoom, ...jobs.map((j) => this.info.contextLength - j.inputIds.length)),
    );
    // No lock: concurrent calls go to the engine thread, which batches them (continuous batching).
    this.checkAlive();
    signal?.throwIfAborted();
    const streams = jobs.map(() => ({
      decoder: this.tokenizer.createDecodeStream({ skipSpecialTokens: true }),
      filter: new TextStreamFilter([this.template.sep, ...gen.stop]),
      ids: [] as number[],
      text: '',
    }));
    let generation: { cancel(): void } | undefined;
    const running = this.engine.generate(
      {
        sequences: jobs.map((j) => ({
          inputIds: Int32Array.from(j.inputIds),
          ...(j.pixelValues ? { pixelValues: j.pixelValues, tiles: j.tiles } : {}),
        })),
        maxNewTokens,
        eosTokenIds: [this.sepId],
        sampling: {
          doSample: gen.doSample,
          temperature: gen.temperature,
          topK: gen.topK,
          topP: gen.topP,
          repetitionPenalty: gen.repetitionPenalty,
          seed: gen.seed,
        },
      },
      {
        ...(signal ? { signal } : {}),
        onToken: (seq, tokenId) => {
          const s = streams[seq];
          s.ids.push(tokenId);
          // An id in the checkpoint's padded embedding rows has no text in the tokenizer (as
          // HF fast tokenizers skip it); it stays in tokenIds but never fails the request.
          const piece = s.filter.push(tokenId < this.tokenizer.vocabSize ? s.decoder.push(tokenId) : '');
          s.text += piece;
          if (piece.length > 0) onText?.(piece, tokenId);
          if (s.filter.hitStop && streams.every((x) => x.filter.hitStop)) generation?.cancel();
        },
      },
    );
    generation = running;
    const results: NativeSequenceResult[] = await running.promise;
    const aborted = signal?.aborted ?? false;
    if (aborted && !partialOnAbort) throw abortReason(signal as AbortSignal);
    return results.map((r, i) => {
      const s = streams[i];
      const tail = s.filter.push(s.decoder.flush()) + s.filter.flush();
      if (tail.length > 0) onText?.(tail, -1);
      s.text += tail;
      const tokenIds = Array.from(r.tokenIds);
      const finishReason: FinishReason =
        s.filter.hitStop || r.finishReason === 'eos' ? 'stop' : r.finishReason === 'aborted' ? 'aborted' : 'length';
      // The reference decodes all ids (special tokens skipped), cuts at the separator and strips.
      const textIds = tokenIds.filter((id) => id < this.tokenizer.vocabSize);
      const full = cleanResponse(this.tokenizer.decode(textIds, { skipSpecialTokens: true }), this.template.sep);
      const text = s.filter.hitStop ? s.text : full;
      return {
        tokenIds,
        text,
        finishReason,
        promptTokens: r.promptTokens,
        ...(r.queueMs !== undefined ? { queueMs: r.queueMs } : {}),
        ...(r.firstTokenMs !== undefined ? { firstTokenMs: r.firstTokenMs } : {}),
      };
    });
  }
}
