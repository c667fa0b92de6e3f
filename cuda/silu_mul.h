// silu(g) · u exactly as the reference computes the LLM's MLP activation: act_fn(gate)
// materializes a bf16 tensor, so silu is rounded to bf16 before the fp32 product (which the
// caller rounds when it stores). elementwise.cu's SiluMulOp (siluMulBf16, siluMulHalvesBf16).
#pragma once
#include <cuda_bf16.h>

namespace ivl::cuda {

__device__ __forceinline__ float siluMulRef(float g, float u) {
  return __bfloat162float(__float2bfloat16_rn(g / (1.0f + expf(-g)))) * u;
}

}  // namespace ivl::cuda
