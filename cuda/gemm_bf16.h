// Dense bf16 GEMM through cuBLASLt: y[M, N] = x[M, K] · w[N, K]ᵀ (+ bias[N]), the shape of
// every Linear layer (weights stored [out, in] as in the checkpoints). bf16 in and out,
// fp32 accumulation and fp32 alpha/beta; the bias is added in cuBLASLt's BIAS epilogue
// (fp32, before the single rounding of the output), which for a bf16 output requires a
// bf16 bias vector (cuBLASLt: bias elements have the output's type, except for IMMA and
// fp8 kernels).
//
// The only file that includes cuBLAS headers (the development machine has none): the
// header stays plain so the backend compiles without them.
//
// Per shape (M, N, K, bias or not, and the alignment of every pointer) one matmul
// descriptor, the three layouts and the heuristic's first algorithm are cached; a call
// after the first for a shape does no descriptor work beyond setting the bias pointer.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace ivl::cuda {

class GemmBf16 {
 public:
  // workspace: device memory of workspaceBytes (256-byte aligned) that every call may use;
  // calls are ordered on `stream`, so one workspace serves them all.
  GemmBf16(cudaStream_t stream, void* workspace, size_t workspaceBytes);
  ~GemmBf16();
  GemmBf16(const GemmBf16&) = delete;
  GemmBf16& operator=(const GemmBf16&) = delete;

  // All matrices row-major and contiguous; bias may be null. Throws ivl::Error
  // (ERR_CUDA with the cuBLAS status name; ERR_OOM for CUBLAS_STATUS_ALLOC_FAILED).
  void run(__nv_bfloat16* y, const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias,
           int64_t M, int64_t N, int64_t K);

  size_t cachedPlans() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ivl::cuda
