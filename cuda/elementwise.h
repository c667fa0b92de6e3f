// Elementwise and row-copy kernels of the CUDA backend: raw device pointers + a stream,
// no synchronization; every launch is checked (IVL_CUDA_CHECK -> ivl::Error ERR_CUDA).
//
// Arithmetic is fp32 with bf16 storage. Where PyTorch materializes an intermediate in
// bf16 (the reference runs the model in bf16), the kernel rounds at the same place, so
// its result is the reference's bit for bit up to fp32 evaluation order:
//   gelu       y = bf16(0.5·x·(1 + erf(x/√2)))
//   siluMul    y = bf16(bf16(silu(g)) · u)                    (act_fn(gate) · up)
//   add        y = bf16(a + b)
//   addScaled  y = bf16(y + bf16(x · s))                      (x + attn(…) · ls1)
//   rope       x'[i] = bf16(bf16(x[i]·c) − bf16(x[i+h]·s)), x'[i+h] = bf16(bf16(x[i+h]·c) + bf16(x[i]·s))
//              (q·cos + rotate_half(q)·sin with cos/sin already bf16)
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/tensor.h"

namespace ivl::cuda {

using bf16 = __nv_bfloat16;

// dst[n] = src[n] converted (src F32, BF16 or F16; round to nearest even).
void convertToBf16(bf16* dst, const void* src, DType srcType, int64_t n, cudaStream_t stream);
void convertToF32(float* dst, const void* src, DType srcType, int64_t n, cudaStream_t stream);

void geluBf16(bf16* y, const bf16* x, int64_t n, cudaStream_t stream);                       // y may alias x
void siluMulBf16(bf16* y, const bf16* gate, const bf16* up, int64_t n, cudaStream_t stream);  // y may alias gate
// y[rows, f] = silu(gu[:, :f]) ⊙ gu[:, f:]  (gu [rows, 2f], a stacked gate/up output)
void siluMulHalvesBf16(bf16* y, const bf16* gu, int64_t rows, int64_t f, cudaStream_t stream);
void addBf16(bf16* y, const bf16* a, const bf16* b, int64_t n, cudaStream_t stream);          // y may alias a
// y[rows, cols] += x[rows, cols] ⊙ s[cols]   (s fp32)
void addScaledBf16(bf16* y, const bf16* x, const float* s, int64_t rows, int64_t cols, cudaStream_t stream);

// In place on x[T, nHeads, 2·half]; cos/sin [T, half] of csType (BF16 or F32).
void ropeBf16(bf16* x, int64_t T, int64_t nHeads, int64_t half, const void* cos, const void* sin, DType csType,
              cudaStream_t stream);

// y[T, H] = table[ids[t], :] (table BF16 or F32, ids int32 on the device, already validated).
void embeddingBf16(bf16* y, const void* table, DType tableType, const int32_t* ids, int64_t T, int64_t H,
                   cudaStream_t stream);

// Row copies of rowBytes each: dst[dstRows ? dstRows[i] : i] = src[srcRows ? srcRows[i] : i]
// for i < n (index arrays int64 on the device, already validated; rows must not overlap).
void copyRows(void* dst, const int64_t* dstRows, const void* src, const int64_t* srcRows, int64_t n,
              int64_t rowBytes, cudaStream_t stream);

}  // namespace ivl::cuda
