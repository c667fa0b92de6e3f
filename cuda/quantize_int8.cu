// Symmetric int8 quantization of bf16 weights and the W8A16 packed layout (quantize_int8.h
// documents both). Three kernels: row/group absmax -> scales, plain quantize, and
// quantize-or-repack into the packed layout (one thread per 16-byte packed chunk).
#include "quantize_int8.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <string>

#include "check.h"

namespace ivl::cuda {
namespace {

using bf16 = __nv_bfloat16;

// Where a kernel reads or writes scales: the plain [N] / [N, G] form or the packed form.
enum class ScaleLayout : int { Plain = 0, Packed = 1 };

__device__ __forceinline__ size_t scaleIndex(ScaleLayout layout, Int8Scheme scheme, int row, int g,
                                             int groups) {
  if (scheme == Int8Scheme::PerChannel) return static_cast<size_t>(row);
  return layout == ScaleLayout::Plain ? static_cast<size_t>(row) * groups + g
                                      : w8a16GroupScaleOffset(row, g, groups);
}

__device__ __forceinline__ float scaleFromAbsMax(float amax) {
  // A zero row / group quantizes to q = 0 with any scale; 1 keeps the scale finite.
  return amax > 0.f ? __fdiv_rn(amax, 127.f) : 1.f;
}

__device__ __forceinline__ int quantizeOne(float w, float s) {
  const int q = __float2int_rn(__fdiv_rn(w, s));  // IEEE division, round-to-nearest-even
  return max(-127, min(127, q));
}

// Eight bf16 from a 16-byte aligned address, as floats.
__device__ __forceinline__ void load8(const bf16* p, float (&v)[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[2 * i] = __uint_as_float(words[i] << 16);
    v[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
  }
}

// One warp per row. PerChannel: absmax over the row. PerGroup128: half a warp per group
// (16 lanes x 8 columns = 128), two groups per step. Writes scales for rows < n; with
// layout Packed also the padding rows (scale 1) up to Np.
__global__ void absMaxScalesKernel(const bf16* __restrict__ w, int n, int k, Int8Scheme scheme,
                                   ScaleLayout layout, float* __restrict__ scales) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int groups = (k + kW8A16Group - 1) / kW8A16Group;
  const int rowsOut = layout == ScaleLayout::Packed ? (n + 15) / 16 * 16 : n;
  if (row >= rowsOut) return;
  if (row >= n) {  // padding row of the packed layout
    if (scheme == Int8Scheme::PerChannel) {
      if (lane == 0) scales[row] = 1.f;
    } else {
      for (int g = lane; g < groups; g += 32) scales[scaleIndex(layout, scheme, row, g, groups)] = 1.f;
    }
    return;
  }
  const bf16* wr = w + static_cast<size_t>(row) * k;
  if (scheme == Int8Scheme::PerChannel) {
    float amax = 0.f;
    for (int c = lane * 8; c < k; c += 32 * 8) {
      float v[8];
      load8(wr + c, v);
#pragma unroll
      for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(v[i]));
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    if (lane == 0) scales[row] = scaleFromAbsMax(amax);
  } else {
    for (int g0 = 0; g0 < groups; g0 += 2) {
      const int g = g0 + lane / 16;
      const int c = g * kW8A16Group + (lane % 16) * 8;
      float amax = 0.f;
      if (g < groups && c < k) {
        float v[8];
        load8(wr + c, v);
#pragma unroll
        for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(v[i]));
      }
#pragma unroll
      for (int off = 8; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
      if (lane % 16 == 0 && g < groups) scales[scaleIndex(layout, scheme, row, g, groups)] = scaleFromAbsMax(amax);
    }
  }
}

// Plain quantization, one thread per 8 consecutive columns: q [N, K] int8.
__global__ void quantizePlainKernel(const bf16* __restrict__ w, int n, int k, Int8Scheme scheme,
                                    const float* __restrict__ scales, int8_t* __restrict__ q) {
  const size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int octets = k / 8;
  if (idx >= static_cast<size_t>(n) * octets) return;
  const int row = static_cast<int>(idx / octets);
  const int c = static_cast<int>(idx % octets) * 8;
  const int groups = (k + kW8A16Group - 1) / kW8A16Group;
  const float s = scales[scaleIndex(ScaleLayout::Plain, scheme, row, c / kW8A16Group, groups)];
  float v[8];
  load8(w + static_cast<size_t>(row) * k + c, v);
  uint32_t lo = 0, hi = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) lo |= (static_cast<uint32_t>(quantizeOne(v[i], s)) & 0xffu) << (8 * i);
#pragma unroll
  for (int i = 0; i < 4; ++i) hi |= (static_cast<uint32_t>(quantizeOne(v[4 + i], s)) & 0xffu) << (8 * i);
  *reinterpret_cast<uint2*>(q + static_cast<size_t>(row) * k + c) = make_uint2(lo, hi);
}

// Source rows for the pack kernel: bf16 weights (quantize on the fly) or plain int8.
struct Bf16Source {
  const bf16* w;
  __device__ void load(int row, int col, int k, float s, int (&q)[8]) const {
    float v[8];
    load8(w + static_cast<size_t>(row) * k + col, v);
#pragma unroll
    for (int i = 0; i < 8; ++i) q[i] = quantizeOne(v[i], s);
  }
};
struct Int8Source {
  const int8_t* q;
  __device__ void load(int row, int col, int k, float, int (&out)[8]) const {
    const uint2 raw = *reinterpret_cast<const uint2*>(q + static_cast<size_t>(row) * k + col);
#pragma unroll
    for (int i = 0; i < 4; ++i) out[i] = static_cast<int8_t>((raw.x >> (8 * i)) & 0xffu);
#pragma unroll
    for (int i = 0; i < 4; ++i) out[4 + i] = static_cast<int8_t>((raw.y >> (8 * i)) & 0xffu);
  }
};

// One thread per 16-byte packed chunk [tile][group][j][lane]: rows gi and gi+8 of the tile,
// columns 128g + 32j + 8ti .. +7 (quantize_int8.h gives the byte order). Out-of-range rows
// or columns are q = 0 (byte 128). Scales are read in `scaleLayout`.
template <class Source>
__global__ void packKernel(Source src, int n, int k, Int8Scheme scheme, const float* __restrict__ scales,
                           ScaleLayout scaleLayout, uint8_t* __restrict__ packed) {
  const int groups = (k + kW8A16Group - 1) / kW8A16Group;
  const size_t chunks = static_cast<size_t>((n + 15) / 16) * groups * 4 * 32;
  const size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= chunks) return;
  const int lane = static_cast<int>(idx % 32);
  const int j = static_cast<int>((idx / 32) % 4);
  const size_t unit = idx / 128;  // tile * groups + g
  const int g = static_cast<int>(unit % groups);
  const int tile = static_cast<int>(unit / groups);
  const int gi = lane / 4, ti = lane % 4;
  const int col = g * kW8A16Group + 32 * j + 8 * ti;
  int q[2][8];  // [half: row gi / gi+8][column offset 0..7]
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = 16 * tile + gi + 8 * h;
    if (row < n && col < k) {
      const float s = scales[scaleIndex(scaleLayout, scheme, row, g, groups)];
      src.load(row, col, k, s, q[h]);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) q[h][i] = 0;
    }
  }
  uint32_t words[4];
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    uint32_t word = 0;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const uint32_t biased = static_cast<uint32_t>(q[b & 1][2 * w + (b >> 1)] + 128);
      word |= biased << (8 * b);
    }
    words[w] = word;
  }
  *reinterpret_cast<uint4*>(packed + idx * 16) = make_uint4(words[0], words[1], words[2], words[3]);
}

// Plain scales [N] / [N, G] -> packed scales (padding rows 1). One thread per packed scale.
__global__ void packScalesKernel(const float* __restrict__ plain, int n, int k, Int8Scheme scheme,
                                 float* __restrict__ packed) {
  const int groups = (k + kW8A16Group - 1) / kW8A16Group;
  const int np = (n + 15) / 16 * 16;
  const size_t count = scheme == Int8Scheme::PerChannel ? np : static_cast<size_t>(np) * groups;
  const size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= count) return;
  if (scheme == Int8Scheme::PerChannel) {
    packed[idx] = idx < static_cast<size_t>(n) ? plain[idx] : 1.f;
    return;
  }
  const int row = static_cast<int>(idx % np), g = static_cast<int>(idx / np);
  packed[w8a16GroupScaleOffset(row, g, groups)] =
      row < n ? plain[static_cast<size_t>(row) * groups + g] : 1.f;
}

// Packed -> bf16 [N, K], one thread per 16-byte packed chunk (rows gi, gi+8; 8 columns each).
__global__ void dequantizeKernel(const uint8_t* __restrict__ packed, const float* __restrict__ scales, int n, int k,
                                 Int8Scheme scheme, bf16* __restrict__ dst) {
  const int groups = (k + kW8A16Group - 1) / kW8A16Group;
  const size_t chunks = static_cast<size_t>((n + 15) / 16) * groups * 4 * 32;
  const size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= chunks) return;
  const int lane = static_cast<int>(idx % 32);
  const int j = static_cast<int>((idx / 32) % 4);
  const size_t unit = idx / 128;
  const int g = static_cast<int>(unit % groups);
  const int tile = static_cast<int>(unit / groups);
  const int gi = lane / 4, ti = lane % 4;
  const int col = g * kW8A16Group + 32 * j + 8 * ti;
  if (col >= k) return;
  const uint4 raw = *reinterpret_cast<const uint4*>(packed + idx * 16);
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = 16 * tile + gi + 8 * h;
    if (row >= n) continue;
    const float s = scales[scaleIndex(ScaleLayout::Packed, scheme, row, g, groups)];
    uint32_t out[4];
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      // byte b of word w is (row gi + 8 (b & 1), column 2w + (b >> 1)): this half's two bytes
      const int q0 = static_cast<int>((words[w] >> (8 * h)) & 0xffu) - 128;
      const int q1 = static_cast<int>((words[w] >> (8 * (h + 2))) & 0xffu) - 128;
      const __nv_bfloat162 v = __floats2bfloat162_rn(static_cast<float>(q0) * s, static_cast<float>(q1) * s);
      out[w] = *reinterpret_cast<const uint32_t*>(&v);
    }
    *reinterpret_cast<uint4*>(dst + static_cast<size_t>(row) * k + col) = make_uint4(out[0], out[1], out[2], out[3]);
  }
}

void checkShape(int n, int k, const char* who) {
  ivl::require(n > 0 && k > 0 && k % 8 == 0, ivl::ErrorCode::InvalidArg,
               std::string(who) + ": expected N > 0 and K > 0 with K a multiple of 8, got N=" +
                   std::to_string(n) + " K=" + std::to_string(k));
}
void checkAligned(const void* p, size_t align, const char* what) {
  ivl::require(p != nullptr && reinterpret_cast<uintptr_t>(p) % align == 0, ivl::ErrorCode::InvalidArg,
               std::string(what) + " must be a non-null device pointer aligned to " + std::to_string(align) +
                   " bytes");
}
unsigned blocksFor(size_t items, int threads) { return static_cast<unsigned>((items + threads - 1) / threads); }

}  // namespace

void quantizeInt8(const bf16* w, int n, int k, Int8Scheme scheme, int8_t* q, float* scales,
                  cudaStream_t stream) {
  checkShape(n, k, "quantizeInt8");
  checkAligned(w, 16, "quantizeInt8: w");
  checkAligned(q, 8, "quantizeInt8: q");
  checkAligned(scales, 4, "quantizeInt8: scales");
  absMaxScalesKernel<<<blocksFor(n, 8), 256, 0, stream>>>(w, n, k, scheme, ScaleLayout::Plain, scales);
  IVL_CUDA_CHECK(cudaGetLastError());
  quantizePlainKernel<<<blocksFor(static_cast<size_t>(n) * (k / 8), 256), 256, 0, stream>>>(w, n, k, scheme,
                                                                                           scales, q);
  IVL_CUDA_CHECK(cudaGetLastError());
}

void packW8A16(const int8_t* q, const float* scales, const W8A16Weight& dst, cudaStream_t stream) {
  checkShape(dst.n, dst.k, "packW8A16");
  checkAligned(q, 8, "packW8A16: q");
  checkAligned(scales, 4, "packW8A16: scales");
  checkAligned(dst.qweight, 16, "packW8A16: dst.qweight");
  checkAligned(dst.scales, 4, "packW8A16: dst.scales");
  const size_t nScales = w8a16ScaleCount(dst.n, dst.k, dst.scheme);
  packScalesKernel<<<blocksFor(nScales, 256), 256, 0, stream>>>(scales, dst.n, dst.k, dst.scheme, dst.scales);
  IVL_CUDA_CHECK(cudaGetLastError());
  const size_t chunks = w8a16PackedBytes(dst.n, dst.k) / 16;
  packKernel<<<blocksFor(chunks, 256), 256, 0, stream>>>(Int8Source{q}, dst.n, dst.k, dst.scheme, scales,
                                                         ScaleLayout::Plain, dst.qweight);
  IVL_CUDA_CHECK(cudaGetLastError());
}

void quantizeW8A16(const bf16* w, const W8A16Weight& dst, cudaStream_t stream) {
  checkShape(dst.n, dst.k, "quantizeW8A16");
  checkAligned(w, 16, "quantizeW8A16: w");
  checkAligned(dst.qweight, 16, "quantizeW8A16: dst.qweight");
  checkAligned(dst.scales, 4, "quantizeW8A16: dst.scales");
  absMaxScalesKernel<<<blocksFor(w8a16PaddedRows(dst.n), 8), 256, 0, stream>>>(w, dst.n, dst.k, dst.scheme,
                                                                             ScaleLayout::Packed, dst.scales);
  IVL_CUDA_CHECK(cudaGetLastError());
  const size_t chunks = w8a16PackedBytes(dst.n, dst.k) / 16;
  packKernel<<<blocksFor(chunks, 256), 256, 0, stream>>>(Bf16Source{w}, dst.n, dst.k, dst.scheme, dst.scales,
                                                         ScaleLayout::Packed, dst.qweight);
  IVL_CUDA_CHECK(cudaGetLastError());
}

void dequantizeW8A16(const W8A16Weight& w, bf16* dst, cudaStream_t stream) {
  checkShape(w.n, w.k, "dequantizeW8A16");
  checkAligned(w.qweight, 16, "dequantizeW8A16: w.qweight");
  checkAligned(w.scales, 4, "dequantizeW8A16: w.scales");
  checkAligned(dst, 16, "dequantizeW8A16: dst");
  const size_t chunks = w8a16PackedBytes(w.n, w.k) / 16;
  dequantizeKernel<<<blocksFor(chunks, 256), 256, 0, stream>>>(w.qweight, w.scales, w.n, w.k, w.scheme, dst);
  IVL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ivl::cuda
