/** internvl-node public API. */
export { InternVL } from './model.js';
export type { Backend, HubLoadOptions, LoadOptions, LoadProgress, RenderedChat } from './model.js';
export type {
  BatchChatRequest,
  BatchChatResult,
  ChatRequest,
  ChatResult,
  FinishReason,
  HistoryInput,
  HistoryTurn,
  ImageInput,
  ImageOptions,
  Timings,
  Usage,
} from './chatTypes.js';
export type { GenerationOptions } from './generation.js';
export { GENERATION_DEFAULTS } from './generation.js';
export { InternVLError, isInternVLError, ERROR_CODES } from './errors.js';
export type { InternVLErrorCode } from './errors.js';
export { pullModel, resolveModel } from './hub/pull.js';
export type { PullOptions, PullProgress, PullResult, PulledFile } from './hub/pull.js';
export type { HubOptions } from './hub/settings.js';
export { readModelConfig } from './config.js';
export type { ModelConfig } from './config.js';
export { loadTokenizer, loadTokenizerSync } from './text/tokenizer.js';
export type { Tokenizer, EncodeOptions, DecodeOptions } from './text/tokenizer.js';
export { DEFAULT_SYSTEM_MESSAGE, getTemplate, templateNames } from './text/templates.js';
export type { ChatTemplate } from './text/templates.js';
export { combineImages, imageOptionsFromConfig, loadImage, loadImages } from './vision/image.js';
export type { LoadImageOptions, LoadedImage } from './vision/image.js';
export { frameIndices, loadVideo } from './vision/video.js';
export type { LoadVideoOptions, LoadedVideo } from './vision/video.js';
export { serve } from './server/server.js';
export type { ServeOptions, RunningServer } from './server/server.js';
export { runtimeInfo } from './native.js';
export { cardDeviceMap, formatDevicePlan, planDeviceMap } from './deviceMap.js';
export type { DeviceMapObject, DeviceMapSpec, DevicePlan, DevicePlanEntry, PlanOptions } from './deviceMap.js';
export type { NativeInfo as RuntimeInfo, NativeCudaDevice as CudaDevice, NativeModelStats as ModelStats, NativeDeviceMemory as DeviceMemory } from './nativeTypes.js';
