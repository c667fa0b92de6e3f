#include "norm.h"

#include <algorithm>
#include <cstdlib>

#include "check.h"
#include "env_switch.h"
#include "kernel_trace.h"
#include "pdl.h"

namespace ivl::cuda {

namespace {

using bf16 = __nv_bfloat16;

struct alignas(16) Bf16x8 {
  bf16 v[8];
};

__device__ __forceinline__ float rb(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the GROUP threads of a row: a warp (GROUP 32) or the whole block. Every
// thread of the group gets the result. `red` holds 32 floats of shared memory.
template <int GROUP>
__device__ __forceinline__ float groupSum(float v, float* red) {
  v = warpSum(v);
  if constexpr (GROUP == 32) {
    return v;
  } else {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();  // red may still be read from the previous reduction
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < GROUP / 32 ? red[lane] : 0.0f;
    return warpSum(t);
  }
}

// Loads VEC consecutive elements of x starting at c as floats.
template <int VEC>
__device__ __forceinline__ void loadRow(const bf16* x, int64_t c, float (&v)[VEC]) {
  if constexpr (VEC == 8) {
    const Bf16x8 p = *reinterpret_cast<const Bf16x8*>(x + c);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = __bfloat162float(p.v[j]);
  } else {
    v[0] = __bfloat162float(x[c]);
  }
}

// Stores VEC floats (already bf16 values) at x + c.
template <int VEC>
__device__ __forceinline__ void storeRow(bf16* x, int64_t c, const float (&v)[VEC]) {
  if constexpr (VEC == 8) {
    Bf16x8 p;
#pragma unroll
    for (int j = 0; j < 8; ++j) p.v[j] = __float2bfloat16_rn(v[j]);
    *reinterpret_cast<Bf16x8*>(x + c) = p;
  } else {
    x[c] = __float2bfloat16_rn(v[0]);
  }
}

// What one norm launch does (see normKernel).
struct NormArgs {
  bf16* y;
  const bf16* x;
  const float* w;
  const float* b;  // LayerNorm bias
  int64_t rows, cols;
  float eps;
  const bf16* r = nullptr;   // ADD: residual rows [rows, cols], contiguous
  const float* s = nullptr;  // ADD: layer scale [cols] (x += r ⊙ s), or null (x += r)
  int64_t ld = 0;            // elements between rows of x and y (0: cols)
  int64_t part = 0;          // blockIdx.y == 1: x, y shifted by `part` elements, weights w2
  const float* w2 = nullptr;
};

// GROUP threads per row, VEC elements per access. RMS: no mean, no bias. ADD: first
// x = bf16(x + r) (with a layer scale: bf16(x + bf16(r · s)), as addScaled) in place, then the
// norm of the new x; each thread rereads only the columns it wrote itself. blockIdx.y picks
// one of two column parts of the rows (the q and k of a stacked qkv row, each with its weight).
template <int GROUP, int VEC, bool RMS, bool ADD = false>
__global__ void normKernel(const NormArgs a) {
  IVL_TRACE_SCOPE;
  // Launched with PDL (pdl.h): the next kernel (a decode GEMV) may start streaming its weights
  // now; every read of x / r and every write waits for the previous kernel to complete.
  pdlLaunchDependents();
  pdlWait();
  IVL_TRACE_GO;
  __shared__ float red[32];
  constexpr int kRowsPerBlock = GROUP == 32 ? 8 : 1;  // blockDim = 256 for warps, GROUP otherwise
  const int sub = GROUP == 32 ? threadIdx.x / 32 : 0;
  const int lane = GROUP == 32 ? threadIdx.x % 32 : threadIdx.x;
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + sub;
  const int64_t cols = a.cols;
  // Rows past the end still take part in block-wide reductions (GROUP > 32) but do no I/O.
  const bool active = row < a.rows;
  const int64_t off = (active ? row : 0) * (a.ld ? a.ld : cols) + (blockIdx.y ? a.part : 0);
  const bf16* xr = a.x + off;
  bf16* yr = a.y + off;
  const float* __restrict__ w = blockIdx.y ? a.w2 : a.w;
  const float* __restrict__ b = a.b;
  const bf16* rr = ADD ? a.r + (active ? row : 0) * cols : nullptr;
  auto addResidual = [&](float (&v)[VEC], int64_t c) {
    float rv[VEC];
    loadRow<VEC>(rr, c, rv);
#pragma unroll
    for (int j = 0; j < VEC; ++j) v[j] = a.s ? rb(v[j] + rb(rv[j] * a.s[c + j])) : rb(v[j] + rv[j]);
    storeRow<VEC>(const_cast<bf16*>(xr), c, v);
  };

  float mean = 0.0f;
  if constexpr (!RMS) {
    float s = 0.0f;
    if (active) {
      for (int64_t c = int64_t(lane) * VEC; c < cols; c += int64_t(GROUP) * VEC) {
        float v[VEC];
        loadRow<VEC>(xr, c, v);
        if constexpr (ADD) addResidual(v, c);
#pragma unroll
        for (int j = 0; j < VEC; ++j) s += v[j];
      }
    }
    mean = groupSum<GROUP>(s, red) / float(cols);
  }
  float ss = 0.0f;
  if (active) {
    for (int64_t c = int64_t(lane) * VEC; c < cols; c += int64_t(GROUP) * VEC) {
      float v[VEC];
      loadRow<VEC>(xr, c, v);
      if constexpr (ADD && RMS) addResidual(v, c);
#pragma unroll
      for (int j = 0; j < VEC; ++j) ss += (v[j] - mean) * (v[j] - mean);
    }
  }
  IVL_TRACE_MARK(0);
  const float rstd = rsqrtf(groupSum<GROUP>(ss, red) / float(cols) + a.eps);
  IVL_TRACE_MARK(1);
  if (!active) return;
  for (int64_t c = int64_t(lane) * VEC; c < cols; c += int64_t(GROUP) * VEC) {
    float v[VEC];
    loadRow<VEC>(xr, c, v);
    float o[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      if constexpr (RMS) {
        o[j] = w[c + j] * rb(v[j] * rstd);
      } else {
        o[j] = (v[j] - mean) * rstd * w[c + j] + b[c + j];
      }
    }
    if constexpr (VEC == 8) {
      Bf16x8 p;
#pragma unroll
      for (int j = 0; j < 8; ++j) p.v[j] = __float2bfloat16_rn(o[j]);
      *reinterpret_cast<Bf16x8*>(yr + c) = p;
    } else {
      yr[c] = __float2bfloat16_rn(o[0]);
    }
  }
}

// 1024-thread blocks for rows of more than 512 accesses (below); INTERNVL_CUDA_NORM_WIDE=0 keeps
// the 256-thread blocks there, for same-session A/Bs.
bool wideRowBlocks() {
  static const bool on = envSwitch("INTERNVL_CUDA_NORM_WIDE", true);
  return on;
}

template <bool RMS, bool ADD = false>
void launchNorm(const NormArgs& a, cudaStream_t stream, unsigned parts = 1) {
  if (a.rows <= 0 || a.cols <= 0) return;
  const int64_t ld = a.ld ? a.ld : a.cols;
  const bool vec = a.cols % 8 == 0 && ld % 8 == 0 && a.part % 8 == 0 &&
                   (reinterpret_cast<uintptr_t>(a.x) | reinterpret_cast<uintptr_t>(a.y) |
                    reinterpret_cast<uintptr_t>(a.r)) % 16 == 0;
  const int64_t perRow = vec ? a.cols / 8 : a.cols;  // accesses per row
  const bool pdl = pdlEnabled();
  auto go = [&](auto kernel, unsigned grid, unsigned threads) {
    launchMaybePdl(pdl, kernel, dim3(grid, parts), dim3(threads), 0, stream, a);
  };
  if (perRow <= 128) {
    const unsigned grid = unsigned((a.rows + 7) / 8);
    if (vec) go(normKernel<32, 8, RMS, ADD>, grid, 256);
    else go(normKernel<32, 1, RMS, ADD>, grid, 256);
  } else if (perRow <= (wideRowBlocks() ? 512 : 1024)) {
    if (vec) go(normKernel<256, 8, RMS, ADD>, unsigned(a.rows), 256);
    else go(normKernel<256, 1, RMS, ADD>, unsigned(a.rows), 256);
  } else {
    // Wide rows (the LLMs' 3584..8192 hidden sizes) get a whole 1024-thread block: each pass
    // over the row is then one round of loads instead of up to four dependent ones, which at
    // decode's handful of rows is the kernel's whole cost (it waits on latency, not bandwidth).
    if (vec) go(normKernel<1024, 8, RMS, ADD>, unsigned(a.rows), 1024);
    else go(normKernel<1024, 1, RMS, ADD>, unsigned(a.rows), 1024);
  }
}

}  // namespace

void layerNormBf16(bf16* y, const bf16* x, const float* w, const float* b, int64_t rows, int64_t cols, float eps,
                   cudaStream_t stream) {
  launchNorm<false>(NormArgs{y, x, w, b, rows, cols, eps}, stream);
}

void rmsNormBf16(bf16* y, const bf16* x, const float* w, int64_t rows, int64_t cols, float eps, cudaStream_t stream) {
  launchNorm<true>(NormArgs{y, x, w, nullptr, rows, cols, eps}, stream);
}

void addRmsNormBf16(bf16* y, bf16* x, const bf16* r, const float* w, int64_t rows, int64_t cols, float eps,
                    cudaStream_t stream) {
  launchNorm<true, true>(NormArgs{y, x, w, nullptr, rows, cols, eps, r}, stream);
}

void addScaledNormBf16(bf16* y, bf16* x, const bf16* r, const float* s, const float* w, const float* b, int64_t rows,
                       int64_t cols, float eps, bool layerNorm, cudaStream_t stream) {
  const NormArgs a{y, x, w, b, rows, cols, eps, r, s};
  if (layerNorm) launchNorm<false, true>(a, stream);
  else launchNorm<true, true>(a, stream);
}

void qkNormBf16(bf16* qkv, int64_t rows, int64_t C, const float* qW, const float* kW, float eps, cudaStream_t stream) {
  NormArgs a{qkv, qkv, qW, nullptr, rows, C, eps};
  a.ld = 3 * C;
  a.part = C;
  a.w2 = kW;
  launchNorm<true>(a, stream, 2);
}

#ifdef IVL_KERNEL_TRACE
cudaError_t normTraceArm(KernelTraceRecord* buf, unsigned* count, unsigned cap) {
  return kernel_trace::arm(buf, count, cap);
}
#endif

}  // namespace ivl::cuda
