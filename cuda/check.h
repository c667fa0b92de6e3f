// Every CUDA runtime / cuBLAS call goes through these: failures become ivl::Error
// (ERR_OOM for allocation failures, ERR_CUDA otherwise) naming the call and site.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "runtime/error.h"

namespace ivl::cuda {

[[noreturn]] inline void throwCuda(cudaError_t err, const char* what, const char* file, int line) {
  std::string msg = std::string(what) + " failed: " + cudaGetErrorName(err) + " (" +
                    cudaGetErrorString(err) + ") at " + file + ":" + std::to_string(line);
  throw ivl::Error(err == cudaErrorMemoryAllocation ? ivl::ErrorCode::OutOfMemory
                                                    : ivl::ErrorCode::Cuda,
                   msg);
}

}  // namespace ivl::cuda

#define IVL_CUDA_CHECK(call)                                                       \
  do {                                                                             \
    cudaError_t ivl_err_ = (call);                                                 \
    if (ivl_err_ != cudaSuccess) ::ivl::cuda::throwCuda(ivl_err_, #call, __FILE__, __LINE__); \
  } while (0)
