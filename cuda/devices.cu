#include "devices.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace ivl::cuda {

DeviceReport queryDevices() {
  DeviceReport report;
  cudaDriverGetVersion(&report.driverVersion);
  cudaRuntimeGetVersion(&report.runtimeVersion);
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS) {
    report.cublasVersion = major * 10000 + minor * 100 + patch;
  }
  report.cublasLtVersion = cublasLtGetVersion();
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    report.problem = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    cudaGetLastError();  // clear: "no device" must not poison later calls
    return report;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    DeviceInfo d;
    d.index = i;
    d.name = prop.name;
    d.computeMajor = prop.major;
    d.computeMinor = prop.minor;
    d.multiprocessors = prop.multiProcessorCount;
    d.totalMemory = prop.totalGlobalMem;
    int prev = 0;
    cudaGetDevice(&prev);
    if (cudaSetDevice(i) == cudaSuccess) {
      size_t freeB = 0, totalB = 0;
      if (cudaMemGetInfo(&freeB, &totalB) == cudaSuccess) {
        d.freeMemory = freeB;
        d.totalMemory = totalB;
      } else {
        cudaGetLastError();
      }
      cudaSetDevice(prev);
    }
    report.devices.push_back(d);
  }
  if (report.devices.empty() && report.problem.empty()) report.problem = "no CUDA device found";
  return report;
}

}  // namespace ivl::cuda
