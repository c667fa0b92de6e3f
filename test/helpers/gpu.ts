/** Why the GPU tests cannot run here ('' when a CUDA device is usable). */
import { runtimeInfo } from '../../lib/native.js';

export function cudaSkipReason(): string {
  const info = runtimeInfo();
  if (!info.cuda.compiled) return 'addon built without the CUDA backend';
  if (info.cuda.devices.length === 0) return `no CUDA device (${info.cuda.problem ?? 'unknown'})`;
  return '';
}
