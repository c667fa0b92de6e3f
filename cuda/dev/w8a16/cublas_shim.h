// cuBLAS bf16 GEMM for the lab's side-by-side timings, loaded with dlopen at run time so the
// lab builds on a machine without cuBLAS headers or libraries (the development machine) and
// runs where libcublas.so.13 exists (the GPU machine). Only the four entry points used here
// are declared; their C ABI and enum values are cuBLAS's (cublas_api.h, library_types.h).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <string>

namespace lab {

class CublasBf16 {
 public:
  // Loads libcublas; ok() is false (and why() says why) when it cannot.
  CublasBf16();
  ~CublasBf16();
  bool ok() const { return handle_ != nullptr; }
  const std::string& why() const { return why_; }
  int version() const { return version_; }
  // y[m, n] = x[m, k] · w[n, k]^T, bf16 in/out, fp32 compute (cublasGemmEx, default algo).
  // Returns the cuBLAS status (0 = success).
  int gemm(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, int m, int n, int k,
           cudaStream_t stream);

 private:
  void* lib_ = nullptr;
  void* handle_ = nullptr;
  int version_ = 0;
  std::string why_;
  void* setStream_ = nullptr;
  void* gemmEx_ = nullptr;
  void* destroy_ = nullptr;
};

}  // namespace lab
