#include "elementwise.h"

#include <cuda_fp16.h>

#include <algorithm>

#include "check.h"
#include "pdl.h"
#include "silu_mul.h"

namespace ivl::cuda {

namespace {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over `items` work items (capped: each thread loops).
inline unsigned gridFor(int64_t items) {
  const int64_t blocks = (items + kThreads - 1) / kThreads;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(blocks, int64_t(1) << 20)));
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

__device__ __forceinline__ float toF(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ bf16 toB(float v) { return __float2bfloat16_rn(v); }
// Rounds through bf16 (where the reference materializes a bf16 intermediate).
__device__ __forceinline__ float rb(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

__device__ __forceinline__ float loadF(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float loadF(const bf16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ float loadF(const __half* p, int64_t i) { return __half2float(p[i]); }

// 8 bf16 in one 16-byte access.
struct alignas(16) Bf16x8 {
  bf16 v[8];
};

// ---- conversions --------------------------------------------------------------------

template <typename S>
__global__ void toBf16Kernel(bf16* __restrict__ dst, const S* __restrict__ src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = toB(loadF(src, i));
}

template <typename S>
__global__ void toF32Kernel(float* __restrict__ dst, const S* __restrict__ src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = loadF(src, i);
}

// ---- elementwise ops ----------------------------------------------------------------

struct GeluOp {
  __device__ float operator()(float x, float) const { return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f)); }
};
struct SiluMulOp {
  __device__ float operator()(float g, float u) const { return siluMulRef(g, u); }
};
struct AddOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};

// y[i] = op(a[i], b[i]) (b unused by unary ops); VEC elements per item.
template <class Op, int VEC, bool BINARY>
__global__ void ewKernel(bf16* y, const bf16* a, const bf16* b, int64_t items, Op op) {
  for (int64_t it = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; it < items; it += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (VEC == 8) {
      const Bf16x8 av = reinterpret_cast<const Bf16x8*>(a)[it];
      Bf16x8 bv{};
      if constexpr (BINARY) bv = reinterpret_cast<const Bf16x8*>(b)[it];
      Bf16x8 out;
#pragma unroll
      for (int j = 0; j < 8; ++j) out.v[j] = toB(op(toF(av.v[j]), BINARY ? toF(bv.v[j]) : 0.0f));
      reinterpret_cast<Bf16x8*>(y)[it] = out;
    } else {
      y[it] = toB(op(toF(a[it]), BINARY ? toF(b[it]) : 0.0f));
    }
  }
}

template <class Op, bool BINARY>
void launchEw(bf16* y, const bf16* a, const bf16* b, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = n % 8 == 0 && aligned16(y) && aligned16(a) && (!BINARY || aligned16(b));
  if (vec) {
    ewKernel<Op, 8, BINARY><<<gridFor(n / 8), kThreads, 0, stream>>>(y, a, b, n / 8, Op{});
  } else {
    ewKernel<Op, 1, BINARY><<<gridFor(n), kThreads, 0, stream>>>(y, a, b, n, Op{});
  }
  IVL_CUDA_CHECK(cudaGetLastError());
}

// y[r, c] = bf16(y + bf16(x · s[c])); VEC consecutive columns per item (cols % VEC == 0).
template <int VEC>
__global__ void addScaledKernel(bf16* y, const bf16* __restrict__ x, const float* __restrict__ s, int64_t items,
                                int64_t colItems) {
  for (int64_t it = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; it < items; it += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c0 = (it % colItems) * VEC;
    if constexpr (VEC == 8) {
      Bf16x8 yv = reinterpret_cast<const Bf16x8*>(y)[it];
      const Bf16x8 xv = reinterpret_cast<const Bf16x8*>(x)[it];
#pragma unroll
      for (int j = 0; j < 8; ++j) yv.v[j] = toB(toF(yv.v[j]) + rb(toF(xv.v[j]) * s[c0 + j]));
      reinterpret_cast<Bf16x8*>(y)[it] = yv;
    } else {
      y[it] = toB(toF(y[it]) + rb(toF(x[it]) * s[c0]));
    }
  }
}

// y[r, c] = silu(gu[r, c]) · gu[r, F + c]; VEC consecutive columns per item (F % VEC == 0).
template <int VEC>
__global__ void siluMulHalvesKernel(bf16* __restrict__ y, const bf16* __restrict__ gu, int64_t items,
                                    int64_t colItems) {
  // Launched with PDL (pdl.h): the down projection after it may start streaming its weights
  // now; gu is read only once the gate/up GEMV before it has completed.
  pdlLaunchDependents();
  pdlWait();
  const SiluMulOp op;
  for (int64_t it = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; it < items; it += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = it / colItems, c = it % colItems;
    const int64_t g = (2 * r * colItems + c), u = g + colItems;  // in VEC units
    if constexpr (VEC == 8) {
      const Bf16x8 gv = reinterpret_cast<const Bf16x8*>(gu)[g];
      const Bf16x8 uv = reinterpret_cast<const Bf16x8*>(gu)[u];
      Bf16x8 out;
#pragma unroll
      for (int j = 0; j < 8; ++j) out.v[j] = toB(op(toF(gv.v[j]), toF(uv.v[j])));
      reinterpret_cast<Bf16x8*>(y)[it] = out;
    } else {
      y[it] = toB(op(toF(gu[g]), toF(gu[u])));
    }
  }
}

// ---- rope ---------------------------------------------------------------------------

template <typename CS>
__global__ void ropeKernel(bf16* x, const CS* __restrict__ cosT, const CS* __restrict__ sinT, int64_t T,
                           int64_t nHeads, int64_t half) {
  const int64_t total = T * nHeads * half;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx % half;
    const int64_t th = idx / half;  // t·nHeads + h
    const int64_t t = th / nHeads;
    const float c = loadF(cosT, t * half + i), s = loadF(sinT, t * half + i);
    bf16* v = x + th * 2 * half;
    const float a = toF(v[i]), b = toF(v[i + half]);
    v[i] = toB(rb(a * c) - rb(b * s));
    v[i + half] = toB(rb(b * c) + rb(a * s));
  }
}

// ---- rows ---------------------------------------------------------------------------

template <typename TT, int VEC>
__global__ void embeddingKernel(bf16* __restrict__ y, const TT* __restrict__ table, const int32_t* __restrict__ ids,
                                int64_t T, int64_t H) {
  const int64_t rowItems = H / VEC;
  const int64_t total = T * rowItems;
  for (int64_t it = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; it < total; it += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = it / rowItems, c = (it % rowItems) * VEC;
    const TT* src = table + int64_t(ids[t]) * H + c;
    bf16* dst = y + t * H + c;
    if constexpr (VEC == 8 && sizeof(TT) == 2) {
      *reinterpret_cast<Bf16x8*>(dst) = *reinterpret_cast<const Bf16x8*>(src);
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) dst[j] = toB(loadF(src, j));
    }
  }
}

template <typename U>
__global__ void copyRowsKernel(char* dst, const int64_t* __restrict__ dstRows, const char* src,
                               const int64_t* __restrict__ srcRows, int64_t n, int64_t rowUnits) {
  const int64_t total = n * rowUnits;
  const int64_t rowBytes = rowUnits * int64_t(sizeof(U));
  for (int64_t it = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; it < total; it += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = it / rowUnits, u = it % rowUnits;
    const int64_t d = dstRows ? dstRows[i] : i;
    const int64_t s = srcRows ? srcRows[i] : i;
    reinterpret_cast<U*>(dst + d * rowBytes)[u] = reinterpret_cast<const U*>(src + s * rowBytes)[u];
  }
}

}  // namespace

void convertToBf16(bf16* dst, const void* src, DType srcType, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  switch (srcType) {
    case DType::F32: toBf16Kernel<<<gridFor(n), kThreads, 0, stream>>>(dst, static_cast<const float*>(src), n); break;
    case DType::BF16:
      IVL_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(n) * 2, cudaMemcpyDeviceToDevice, stream));
      return;
    case DType::F16: toBf16Kernel<<<gridFor(n), kThreads, 0, stream>>>(dst, static_cast<const __half*>(src), n); break;
    default: throw Error(ErrorCode::Internal, std::string("convertToBf16: unsupported source dtype ") + dtypeName(srcType));
  }
  IVL_CUDA_CHECK(cudaGetLastError());
}

void convertToF32(float* dst, const void* src, DType srcType, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  switch (srcType) {
    case DType::F32:
      IVL_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(n) * 4, cudaMemcpyDeviceToDevice, stream));
      return;
    case DType::BF16: toF32Kernel<<<gridFor(n), kThreads, 0, stream>>>(dst, static_cast<const bf16*>(src), n); break;
    case DType::F16: toF32Kernel<<<gridFor(n), kThreads, 0, stream>>>(dst, static_cast<const __half*>(src), n); break;
    default: throw Error(ErrorCode::Internal, std::string("convertToF32: unsupported source dtype ") + dtypeName(srcType));
  }
  IVL_CUDA_CHECK(cudaGetLastError());
}

void geluBf16(bf16* y, const bf16* x, int64_t n, cudaStream_t stream) {
  launchEw<GeluOp, false>(y, x, nullptr, n, stream);
}

void siluMulBf16(bf16* y, const bf16* gate, const bf16* up, int64_t n, cudaStream_t stream) {
  launchEw<SiluMulOp, true>(y, gate, up, n, stream);
}

void siluMulHalvesBf16(bf16* y, const bf16* gu, int64_t rows, int64_t f, cudaStream_t stream) {
  const int64_t n = rows * f;
  if (n <= 0) return;
  const bool pdl = pdlEnabled();
  if (f % 8 == 0 && aligned16(y) && aligned16(gu)) {
    launchMaybePdl(pdl, siluMulHalvesKernel<8>, dim3(gridFor(n / 8)), dim3(kThreads), 0, stream, y, gu, n / 8, f / 8);
  } else {
    launchMaybePdl(pdl, siluMulHalvesKernel<1>, dim3(gridFor(n)), dim3(kThreads), 0, stream, y, gu, n, f);
  }
}

void addBf16(bf16* y, const bf16* a, const bf16* b, int64_t n, cudaStream_t stream) {
  launchEw<AddOp, true>(y, a, b, n, stream);
}

void addScaledBf16(bf16* y, const bf16* x, const float* s, int64_t rows, int64_t cols, cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n <= 0) return;
  if (cols % 8 == 0 && aligned16(y) && aligned16(x)) {
    addScaledKernel<8><<<gridFor(n / 8), kThreads, 0, stream>>>(y, x, s, n / 8, cols / 8);
  } else {
    addScaledKernel<1><<<gridFor(n), kThreads, 0, stream>>>(y, x, s, n, cols);
  }
  IVL_CUDA_CHECK(cudaGetLastError());
}

void ropeBf16(bf16* x, int64_t T, int64_t nHeads, int64_t half, const void* cos, const void* sin, DType csType,
              cudaStream_t stream) {
  const int64_t total = T * nHeads * half;
  if (total <= 0) return;
  if (csType == DType::BF16) {
    ropeKernel<<<gridFor(total), kThreads, 0, stream>>>(x, static_cast<const bf16*>(cos),
                                                         static_cast<const bf16*>(sin), T, nHeads, half);
  } else if (csType == DType::F32) {
    ropeKernel<<<gridFor(total), kThreads, 0, stream>>>(x, static_cast<const float*>(cos),
                                                         static_cast<const float*>(sin), T, nHeads, half);
  } else {
    throw Error(ErrorCode::Internal, "rope: cos/sin must be BF16 or F32");
  }
  IVL_CUDA_CHECK(cudaGetLastError());
}

void embeddingBf16(bf16* y, const void* table, DType tableType, const int32_t* ids, int64_t T, int64_t H,
                   cudaStream_t stream) {
  if (T <= 0 || H <= 0) return;
  if (tableType == DType::BF16) {
    if (H % 8 == 0 && aligned16(y) && aligned16(table)) {
      embeddingKernel<bf16, 8><<<gridFor(T * H / 8), kThreads, 0, stream>>>(y, static_cast<const bf16*>(table), ids, T, H);
    } else {
      embeddingKernel<bf16, 1><<<gridFor(T * H), kThreads, 0, stream>>>(y, static_cast<const bf16*>(table), ids, T, H);
    }
  } else if (tableType == DType::F32) {
    embeddingKernel<float, 1><<<gridFor(T * H), kThreads, 0, stream>>>(y, static_cast<const float*>(table), ids, T, H);
  } else {
    throw Error(ErrorCode::Internal, "embedding: table must be BF16 or F32");
  }
  IVL_CUDA_CHECK(cudaGetLastError());
}

void copyRows(void* dst, const int64_t* dstRows, const void* src, const int64_t* srcRows, int64_t n, int64_t rowBytes,
              cudaStream_t stream) {
  if (n <= 0 || rowBytes <= 0) return;
  const uintptr_t al = reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src) | uintptr_t(rowBytes);
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  if (al % 16 == 0) {
    copyRowsKernel<uint4><<<gridFor(n * rowBytes / 16), kThreads, 0, stream>>>(d, dstRows, s, srcRows, n, rowBytes / 16);
  } else if (al % 4 == 0) {
    copyRowsKernel<uint32_t><<<gridFor(n * rowBytes / 4), kThreads, 0, stream>>>(d, dstRows, s, srcRows, n, rowBytes / 4);
  } else if (al % 2 == 0) {
    copyRowsKernel<uint16_t><<<gridFor(n * rowBytes / 2), kThreads, 0, stream>>>(d, dstRows, s, srcRows, n, rowBytes / 2);
  } else {
    copyRowsKernel<uint8_t><<<gridFor(n * rowBytes), kThreads, 0, stream>>>(d, dstRows, s, srcRows, n, rowBytes);
  }
  IVL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ivl::cuda
