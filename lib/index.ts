/** internvl-node public API. */
export { InternVLError, isInternVLError, ERROR_CODES } from './errors.js';
export type { InternVLErrorCode } from './errors.js';
export { runtimeInfo } from './native.js';
export type { NativeInfo as RuntimeInfo, NativeCudaDevice as CudaDevice } from './nativeTypes.js';
