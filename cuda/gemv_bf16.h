// Skinny bf16 GEMM for decode: y[M, N] = x[M, K] · w[N, K]ᵀ (+ bias[N]) at M <= kGemvBf16MaxM,
// bf16 in and out, fp32 accumulation. The bf16 matmuls of a decode step (the LM head in every
// dtype, and every linear of a bf16 model) read their weights once per token and do almost no
// math, so they run at the rate the weights stream. cuBLASLt's heuristic gives the 40B head
// (64000 x 7168) a GEMV that streams ~3.1 TB/s on the H200; this kernel keeps every warp's
// next rows in flight instead (gemv_bf16.cu says how).
//
// Launched with programmatic dependent launch (pdl.h) when enabled: each warp's first weight
// loads are issued before the wait, so `w` must be final before the stream's latest plain
// launch (weights are: they are written at load).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ivl::cuda {

constexpr int kGemvBf16MaxM = 4;

// Whether gemvBf16 takes this call: 1 <= M <= kGemvBf16MaxM, K a multiple of 8 and x, w 16-byte
// aligned (rows of 8 bf16 read as one 16-byte load).
bool gemvBf16Fits(const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t M, int64_t N, int64_t K);

// Requires gemvBf16Fits; bias may be null. Launch errors throw ivl::Error (ERR_CUDA).
void gemvBf16(__nv_bfloat16* y, const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias,
              int64_t M, int64_t N, int64_t K, cudaStream_t stream);

// For the kernel lab: chunks in flight per row and lane, 4 (the default) or 8; 0 = the default.
void gemvBf16SetLab(int unroll);

}  // namespace ivl::cuda
