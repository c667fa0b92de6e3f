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

export interface NativeInfo {
  version: string;
  backends: Array<'cpu' | 'cuda'>;
  cuda: NativeCudaReport;
  hardwareConcurrency: number;
}

export interface NativeAddon {
  info(): NativeInfo;
  bf16ToF32(input: Uint16Array): Promise<Float32Array>;
}
