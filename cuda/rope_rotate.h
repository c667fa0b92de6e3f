// One NeoX rotate-half pair (x[i], x[i + D/2]) by (cos, sin), rounded as PyTorch's bf16 rope:
// each product to bf16 before the sum. Shared by every kernel that ropes a decode query or key,
// so that they agree bit for bit.
#pragma once
#include <cuda_bf16.h>

namespace ivl::cuda {

__device__ __forceinline__ float roundBf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

__device__ __forceinline__ void ropeRotate(float a, float b, float c, float s, __nv_bfloat16& lo,
                                           __nv_bfloat16& hi) {
  lo = __float2bfloat16_rn(roundBf16(a * c) - roundBf16(b * s));
  hi = __float2bfloat16_rn(roundBf16(b * c) + roundBf16(a * s));
}

}  // namespace ivl::cuda
