#include "qkv_rope_append.h"

#include <algorithm>

#include "check.h"
#include "pdl.h"
#include "rope_rotate.h"

namespace ivl::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kThreads = 256;

__device__ __forceinline__ float toF(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float loadF(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float loadF(const bf16* p, int64_t i) { return __bfloat162float(p[i]); }

// One item per (token, head of q|k|v, rotation pair i < half): q and k pairs are rotated
// (same rounding as ropeKernel in elementwise.cu; ropeRotate, which decode attention's rope
// shares), v pairs copied.
template <typename CS>
__global__ void qkvRopeAppendKernel(bf16* __restrict__ q, bf16* __restrict__ kCache, bf16* __restrict__ vCache,
                                    const bf16* __restrict__ qkv, const CS* __restrict__ cosT,
                                    const CS* __restrict__ sinT, const int64_t* __restrict__ slots, int64_t T,
                                    int64_t Hq, int64_t KV, int64_t half) {
  // Launched with PDL (pdl.h): the qkv GEMV before it may still be running; nothing is read
  // or written until it has completed.
  pdlLaunchDependents();
  pdlWait();
  const int64_t heads = Hq + 2 * KV, D = 2 * half;
  const int64_t total = T * heads * half;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx % half;
    const int64_t th = idx / half;
    const int64_t h = th % heads, t = th / heads;
    const bf16* src = qkv + t * heads * D + h * D;
    const float a = toF(src[i]), b = toF(src[i + half]);
    if (h >= Hq + KV) {  // v: copied as is
      bf16* dst = vCache + slots[t] * KV * D + (h - Hq - KV) * D;
      dst[i] = src[i];
      dst[i + half] = src[i + half];
      continue;
    }
    const float c = loadF(cosT, t * half + i), s = loadF(sinT, t * half + i);
    bf16* dst = h < Hq ? q + t * Hq * D + h * D : kCache + slots[t] * KV * D + (h - Hq) * D;
    ropeRotate(a, b, c, s, dst[i], dst[i + half]);
  }
}

}  // namespace

void qkvRopeAppendBf16(bf16* q, bf16* kCache, bf16* vCache, const bf16* qkv, const void* cos, const void* sin,
                       DType csType, const int64_t* slots, int64_t T, int64_t Hq, int64_t KV, int64_t half,
                       cudaStream_t stream) {
  const int64_t total = T * (Hq + 2 * KV) * half;
  if (total <= 0) return;
  const unsigned grid = unsigned(std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t(1) << 20));
  const bool pdl = pdlEnabled();
  if (csType == DType::BF16) {
    launchMaybePdl(pdl, qkvRopeAppendKernel<bf16>, dim3(grid), dim3(kThreads), 0, stream, q, kCache, vCache, qkv,
                   static_cast<const bf16*>(cos), static_cast<const bf16*>(sin), slots, T, Hq, KV, half);
  } else if (csType == DType::F32) {
    launchMaybePdl(pdl, qkvRopeAppendKernel<float>, dim3(grid), dim3(kThreads), 0, stream, q, kCache, vCache, qkv,
                   static_cast<const float*>(cos), static_cast<const float*>(sin), slots, T, Hq, KV, half);
  } else {
    throw Error(ErrorCode::Internal, "qkvRopeAppend: cos/sin must be BF16 or F32");
  }
}

}  // namespace ivl::cuda
