// bf16 GEMV for single-row decode: y[1, N] = x[1, K] · w[N, K]ᵀ (+ bias[N]), bf16 in and out,
// fp32 accumulation. The bf16 matmuls of a batch-1 decode step (the LM head in every dtype, and
// every linear of a bf16 model) read their weights once per token and do almost no math, so
// they run at the rate the weights stream, and as a PDL kernel (below) this one also streams
// its first rows while the kernel before it finishes, which cuBLASLt's kernels cannot.
// 40B decode step on the H200, against cuBLASLt (2026-11-29): int8 10.77 / 10.69 ms against
// 10.88 / 10.94, bf16 18.68 / 18.78 against 19.28 / 18.96. At 2-4 rows cuBLAS streams faster
// than this kernel's FMA form did (lab `gemv-bf16`), so they stay with cuBLASLt.
//
// Launched with programmatic dependent launch (pdl.h) when enabled: each warp's first weight
// loads are issued before the wait, so `w` must be final before the stream's latest plain
// launch (weights are: they are written at load).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ivl::cuda {

// Whether gemvBf16 takes this call: M = 1, K a multiple of 8, x and w 16-byte aligned (8 bf16
// are one 16-byte load).
bool gemvBf16Fits(const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t M, int64_t N, int64_t K);

// Requires gemvBf16Fits; bias may be null. Launch errors throw ivl::Error (ERR_CUDA).
void gemvBf16(__nv_bfloat16* y, const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias,
              int64_t M, int64_t N, int64_t K, cudaStream_t stream);

}  // namespace ivl::cuda
