#include "vit_ops.h"

#include <algorithm>

#include "check.h"

namespace ivl::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kThreads = 256;

inline unsigned gridFor(int64_t items) {
  const int64_t blocks = (items + kThreads - 1) / kThreads;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(blocks, int64_t(1) << 20)));
}

#define IVL_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// One thread per output element: out[row, (ch·p + ky)·p + kx] = pixels[t, ch, r·p + ky, c·p + kx].
__global__ void patchifyKernel(bf16* __restrict__ out, const bf16* __restrict__ pixels, int64_t T, int64_t S,
                               int64_t p) {
  const int64_t G = S / p, K = 3 * p * p;
  const int64_t total = T * G * G * K;
  IVL_GRID_STRIDE(idx, total) {
    const int64_t row = idx / K, k = idx % K;
    const int64_t t = row / (G * G), r = (row / G) % G, c = row % G;
    const int64_t ch = k / (p * p), ky = (k / p) % p, kx = k % p;
    out[idx] = pixels[((t * 3 + ch) * S + r * p + ky) * S + c * p + kx];
  }
}

__global__ void vitEmbedKernel(bf16* __restrict__ out, const bf16* __restrict__ patches, const float* __restrict__ cls,
                               const float* __restrict__ pos, int64_t T, int64_t N, int64_t C) {
  const int64_t total = T * N * C;
  IVL_GRID_STRIDE(idx, total) {
    const int64_t c = idx % C, i = (idx / C) % N, t = idx / (N * C);
    const float v = i == 0 ? cls[c] : __bfloat162float(patches[(t * (N - 1) + i - 1) * C + c]);
    out[idx] = __float2bfloat16_rn(v + pos[i * C + c]);
  }
}

// One item = U-sized unit of an output row; the row's s² source cells are C·elemBytes each.
template <typename U>
__global__ void pixelShuffleKernel(char* __restrict__ out, const char* __restrict__ x, int64_t T, int64_t grid,
                                   int64_t s, int64_t cellUnits) {
  const int64_t G2 = grid / s;
  const int64_t rowUnits = s * s * cellUnits;
  const int64_t total = T * G2 * G2 * rowUnits;
  IVL_GRID_STRIDE(idx, total) {
    const int64_t row = idx / rowUnits, u = idx % rowUnits;
    const int64_t t = row / (G2 * G2), r2 = (row / G2) % G2, c2 = row % G2;
    const int64_t jk = u / cellUnits, cu = u % cellUnits;
    const int64_t j = jk / s, k = jk % s;
    const int64_t cell = (s * r2 + j) * grid + (s * c2 + k);
    const int64_t srcRow = t * (1 + grid * grid) + 1 + cell;
    reinterpret_cast<U*>(out)[idx] = reinterpret_cast<const U*>(x)[srcRow * cellUnits + cu];
  }
}

}  // namespace

void patchifyBf16(bf16* out, const bf16* pixels, int64_t T, int64_t S, int64_t p, cudaStream_t stream) {
  const int64_t G = S / p, total = T * G * G * 3 * p * p;
  if (total <= 0) return;
  patchifyKernel<<<gridFor(total), kThreads, 0, stream>>>(out, pixels, T, S, p);
  IVL_CUDA_CHECK(cudaGetLastError());
}

void vitEmbedBf16(bf16* out, const bf16* patches, const float* cls, const float* pos, int64_t T, int64_t N, int64_t C,
                  cudaStream_t stream) {
  const int64_t total = T * N * C;
  if (total <= 0) return;
  vitEmbedKernel<<<gridFor(total), kThreads, 0, stream>>>(out, patches, cls, pos, T, N, C);
  IVL_CUDA_CHECK(cudaGetLastError());
}

void pixelShuffleRows(void* out, const void* x, int64_t T, int64_t grid, int64_t scale, int64_t C, int64_t elemBytes,
                      cudaStream_t stream) {
  const int64_t cellBytes = C * elemBytes;
  const int64_t G2 = grid / scale;
  const int64_t totalBytes = T * G2 * G2 * scale * scale * cellBytes;
  if (totalBytes <= 0) return;
  const uintptr_t al = reinterpret_cast<uintptr_t>(out) | reinterpret_cast<uintptr_t>(x) | uintptr_t(cellBytes);
  char* o = static_cast<char*>(out);
  const char* s = static_cast<const char*>(x);
  if (al % 16 == 0) {
    pixelShuffleKernel<uint4><<<gridFor(totalBytes / 16), kThreads, 0, stream>>>(o, s, T, grid, scale, cellBytes / 16);
  } else if (al % 4 == 0) {
    pixelShuffleKernel<uint32_t><<<gridFor(totalBytes / 4), kThreads, 0, stream>>>(o, s, T, grid, scale, cellBytes / 4);
  } else if (al % 2 == 0) {
    pixelShuffleKernel<uint16_t><<<gridFor(totalBytes / 2), kThreads, 0, stream>>>(o, s, T, grid, scale, cellBytes / 2);
  } else {
    pixelShuffleKernel<uint8_t><<<gridFor(totalBytes), kThreads, 0, stream>>>(o, s, T, grid, scale, cellBytes);
  }
  IVL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ivl::cuda
