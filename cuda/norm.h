// Row normalizations of the CUDA backend: bf16 rows, fp32 statistics, fp32 weights.
// One warp per row for C <= 1024, one block per row above; the row is read from global
// memory once per pass (two-pass mean/variance, no E[x²]−E[x]² cancellation); y may alias x
// (every element is written by the thread that read it, after both reductions).
//   layerNorm  y = bf16((x − mean) · rstd · w + b)
//   rmsNorm    y = bf16(w · bf16(x · rstd))   (PyTorch: weight * hidden.to(bf16))
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernel_trace.h"

namespace ivl::cuda {

void layerNormBf16(__nv_bfloat16* y, const __nv_bfloat16* x, const float* w, const float* b, int64_t rows,
                   int64_t cols, float eps, cudaStream_t stream);
void rmsNormBf16(__nv_bfloat16* y, const __nv_bfloat16* x, const float* w, int64_t rows, int64_t cols, float eps,
                 cudaStream_t stream);
// x = bf16(x + r) in place, then y = rmsNorm(x) as above: the residual add and the next
// norm in one pass (y must not alias x or r).
void addRmsNormBf16(__nv_bfloat16* y, __nv_bfloat16* x, const __nv_bfloat16* r, const float* w, int64_t rows,
                    int64_t cols, float eps, cudaStream_t stream);
// The ViT's residual: x = bf16(x + bf16(r · s)) in place (s: the layer scale, as addScaled),
// then y = layerNorm(x; w, b) or rmsNorm(x; w) as above, in one pass (y must not alias x or r).
void addScaledNormBf16(__nv_bfloat16* y, __nv_bfloat16* x, const __nv_bfloat16* r, const float* s, const float* w,
                       const float* b, int64_t rows, int64_t cols, float eps, bool layerNorm, cudaStream_t stream);
// InternViT-6B's qk normalization in place on stacked qkv rows [rows, 3C]: rmsNorm over the
// full width C of the q part (weight qW) and of the k part (kW), one launch for both.
void qkNormBf16(__nv_bfloat16* qkv, int64_t rows, int64_t C, const float* qW, const float* kW, float eps,
                cudaStream_t stream);

#ifdef IVL_KERNEL_TRACE
// Lab: the norm kernels record their blocks into buf (kernel_trace.h; null stops).
cudaError_t normTraceArm(KernelTraceRecord* buf, unsigned* count, unsigned cap);
#endif

}  // namespace ivl::cuda
