// bf16 GEMV for single-row decode (gemv_bf16.h). Each warp owns kRows consecutive weight rows
// and walks them together along K: lane l reads the 16-byte chunks l, l + 32, ... of every row,
// with kUnroll chunks of each row in flight (kRows x kUnroll x 16 B a lane), refilling a
// register slot as soon as its chunk is multiplied. The math (bf16 -> fp32 is a shift; one FMA
// per weight) is a small fraction of the issue rate, so the rate is the bytes in flight: 8 warps
// a block, four blocks an SM (60 registers). Lab (cuda/dev/w8a16, `gemv-bf16`, H200, L2
// flushed): the 40B head 64000 x 7168 in 215 us (4.26 TB/s), the 8B head 179 us against
// cuBLAS's 244; 8 chunks in flight (two blocks an SM) streamed ~20 % slower.
#include "gemv_bf16.h"

#include <string>

#include "check.h"
#include "ld_stream.h"
#include "pdl.h"

namespace ivl::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kThreads = 256;
constexpr int kRows = 2;    // weight rows per warp
constexpr int kUnroll = 4;  // 16-byte chunks per row in flight per lane

struct Params {
  const uint4* x;    // [k / 8] chunks
  const uint4* w;    // [n, k / 8] chunks
  const bf16* bias;  // [n] or null
  bf16* y;           // [n]
  int n, k8;         // k8 = k / 8
};

// Two bf16 in a word -> floats: the low one shifted up, the high one masked.
__device__ __forceinline__ float lo(uint32_t v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float hi(uint32_t v) { return __uint_as_float(v & 0xffff0000u); }

__device__ __forceinline__ float dot8(uint4 w, const float (&x)[8], float acc) {
  acc = fmaf(lo(w.x), x[0], acc);
  acc = fmaf(hi(w.x), x[1], acc);
  acc = fmaf(lo(w.y), x[2], acc);
  acc = fmaf(hi(w.y), x[3], acc);
  acc = fmaf(lo(w.z), x[4], acc);
  acc = fmaf(hi(w.z), x[5], acc);
  acc = fmaf(lo(w.w), x[6], acc);
  acc = fmaf(hi(w.w), x[7], acc);
  return acc;
}

__global__ void __launch_bounds__(kThreads) gemvKernel(const Params p) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int row0 = (blockIdx.x * (kThreads / 32) + warp) * kRows;
  const uint4* wRow[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) wRow[r] = p.w + static_cast<size_t>(min(row0 + r, p.n - 1)) * p.k8;
  // This lane's chunks: lane + 32 i, i < steps.
  const int steps = p.k8 > lane ? (p.k8 - lane + 31) / 32 : 0;

  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = 0.f;

  // PDL (pdl.h): the first kUnroll chunks of each row stream before the wait; x after it.
  pdlLaunchDependents();
  uint4 wb[kUnroll][kRows];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u)
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      if (u < steps) wb[u][r] = ldgStream<true>(wRow[r] + lane + 32 * u);
  pdlWait();

  for (int i = 0; i < steps; i += kUnroll) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (i + u < steps) {
        const int c = lane + 32 * (i + u);
        const uint4 xv = __ldg(p.x + c);
        const float xf[8] = {lo(xv.x), hi(xv.x), lo(xv.y), hi(xv.y), lo(xv.z), hi(xv.z), lo(xv.w), hi(xv.w)};
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const uint4 w = wb[u][r];
          if (i + u + kUnroll < steps) wb[u][r] = ldgStream<false>(wRow[r] + c + 32 * kUnroll);
          acc[r] = dot8(w, xf, acc[r]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], o);
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int n = row0 + r;
      if (n < p.n) p.y[n] = __float2bfloat16_rn(acc[r] + (p.bias != nullptr ? __bfloat162float(p.bias[n]) : 0.f));
    }
  }
}

void launch(const Params& p, cudaStream_t stream) {
  const int rowsPerBlock = (kThreads / 32) * kRows;
  const dim3 grid((p.n + rowsPerBlock - 1) / rowsPerBlock);
  launchMaybePdl(pdlEnabled(), gemvKernel, grid, dim3(kThreads), 0, stream, p);
}

}  // namespace

bool gemvBf16Fits(const bf16* x, const bf16* w, int64_t M, int64_t N, int64_t K) {
  return M == 1 && N >= 1 && N < (int64_t(1) << 30) && K >= 8 && K % 8 == 0 &&
         K / 8 < (int64_t(1) << 30) && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(w) % 16 == 0;
}

void gemvBf16(bf16* y, const bf16* x, const bf16* w, const bf16* bias, int64_t M, int64_t N, int64_t K,
              cudaStream_t stream) {
  ivl::require(gemvBf16Fits(x, w, M, N, K), ivl::ErrorCode::InvalidArg,
               "gemvBf16: needs M = 1, K a multiple of 8 and 16-byte aligned x and w");
  const Params p{reinterpret_cast<const uint4*>(x), reinterpret_cast<const uint4*>(w), bias, y, int(N), int(K / 8)};
  launch(p, stream);
  IVL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ivl::cuda
