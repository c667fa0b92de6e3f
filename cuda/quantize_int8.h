// Symmetric int8 weight quantization for the W8A16 GEMM (issue #7), and the packed
// layout that GEMM reads. Host-callable; include from .cu or .cpp compiled with the CUDA
// include path. Every launcher throws ivl::Error (ERR_INVALID_ARG for bad shapes or
// pointers, ERR_CUDA for launch failures) and never exits.
//
// ---- Quantization (both schemes) ---------------------------------------------------------
//   W  : bf16 [N, K] row-major (out-features x in-features, as a PyTorch Linear weight)
//   per output channel : s[n]    = max_k |W[n,k]| / 127                       (fp32)
//   per group of 128   : s[n,g]  = max_{k in [128g, 128g+128) ∩ [0,K)} |W[n,k]| / 127
//   q[n,k] = clamp(rne(W[n,k] / s), -127, 127)       (IEEE fp32 division, round to nearest
//                                                      even; -128 is never produced)
//   A zero row / group gets s = 1 and q = 0. Dequantized weight: W'[n,k] = q[n,k] * s.
//   Scales are fp32: per-channel costs 4 B per row (nothing); per-group 4 B per 128 weights
//   (3.1 % over the int8 bytes). fp32 keeps the dequantized weight exactly q*s, so the
//   GEMM's only rounding is fp32 accumulation and the final bf16 store.
//
// ---- Packed layout (what the GEMM reads) -------------------------------------------------
//   Np = ceil(N/16)*16 rows, G = ceil(K/128) groups, Kp = 128*G; padding is q = 0.
//   qweight : uint8 [Np/16][G][4][32][16]  = [tile][group][k32 block j][lane][16 bytes]
//             each byte holds q + 128 (biased, so int8 -> bf16 is 5 integer ops per pair).
//             For tile t, group g, block j, lane = 4*gi + ti (gi 0..7, ti 0..3), byte
//             4*w + b (w 0..3, b 0..3) holds row n = 16t + gi + 8*(b & 1)
//             and column k = 128g + 32j + 8ti + 2w + (b >> 1).
//             So one 16-byte load per lane gives, after dequantization, the bf16 A fragments
//             of two m16n8k16 MMAs (rows = 16 output channels; its k order is permuted within
//             each 32-column block, and the activation fragment uses the same permutation,
//             which makes it one contiguous 16-byte load of 8 activations per lane too).
//             Seen as the B operand (weights as columns) the same 16 bytes are the B fragments
//             of two n8 blocks x two k16 steps. A unit [tile][group] is 2048 contiguous bytes.
//   scales  : fp32, PerChannel: [Np]; PerGroup128: [Np/16][G][16] (tile-major, the 16 rows of
//             a tile for one group contiguous: 64 bytes per 2048-byte unit). Padding rows: 1.
//   Plain (unpacked) form, for interchange and tests: q int8 [N, K]; scales [N] or [N, G].
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ivl::cuda {

enum class Int8Scheme : int {
  PerChannel = 0,   // one fp32 scale per output row
  PerGroup128 = 1,  // one fp32 scale per output row and 128 consecutive input columns
};

constexpr int kW8A16Group = 128;  // group size along K (also the GEMM's k tile)
constexpr int kW8A16Tile = 16;    // output rows per packed tile (the MMA's 16 rows)

// A quantized, packed weight. Pointers are device memory owned by the caller.
struct W8A16Weight {
  uint8_t* qweight = nullptr;  // [Np/16][G][4][32][16] biased bytes (see above)
  float* scales = nullptr;     // PerChannel: [Np]; PerGroup128: [Np/16][G][16]
  int n = 0;                   // output features (rows of W)
  int k = 0;                   // input features (columns of W); multiple of 8
  Int8Scheme scheme = Int8Scheme::PerChannel;
};

inline int w8a16PaddedRows(int n) { return (n + kW8A16Tile - 1) / kW8A16Tile * kW8A16Tile; }
inline int w8a16Groups(int k) { return (k + kW8A16Group - 1) / kW8A16Group; }
// Bytes of W8A16Weight::qweight.
inline size_t w8a16PackedBytes(int n, int k) {
  return static_cast<size_t>(w8a16PaddedRows(n)) * static_cast<size_t>(w8a16Groups(k)) * kW8A16Group;
}
// Floats of W8A16Weight::scales.
inline size_t w8a16ScaleCount(int n, int k, Int8Scheme scheme) {
  return scheme == Int8Scheme::PerChannel
             ? static_cast<size_t>(w8a16PaddedRows(n))
             : static_cast<size_t>(w8a16PaddedRows(n)) * static_cast<size_t>(w8a16Groups(k));
}
// Floats of the plain scales: [N] or [N, G].
inline size_t int8PlainScaleCount(int n, int k, Int8Scheme scheme) {
  return scheme == Int8Scheme::PerChannel ? static_cast<size_t>(n)
                                          : static_cast<size_t>(n) * static_cast<size_t>(w8a16Groups(k));
}

// Byte offset in qweight of logical element (row, col), G = w8a16Groups(k). Host and device.
#if defined(__CUDACC__)
__host__ __device__
#endif
inline size_t w8a16PackedOffset(int row, int col, int groups) {
  const int tile = row >> 4, r = row & 15;
  const int g = col >> 7, j = (col >> 5) & 3, c = col & 31;
  const int gi = r & 7, hi = r >> 3;        // row within the 8-row half, which half
  const int ti = c >> 3, w = (c & 7) >> 1;  // lane's k-octet, word within the lane
  const int b = ((c & 1) << 1) | hi;        // byte within the word
  const int lane = gi * 4 + ti;
  return ((static_cast<size_t>(tile) * groups + g) * 4 + j) * 512 + lane * 16 + w * 4 + b;
}
// Offset in scales (PerGroup128) of the scale of (row, group).
#if defined(__CUDACC__)
__host__ __device__
#endif
inline size_t w8a16GroupScaleOffset(int row, int group, int groups) {
  return (static_cast<size_t>(row >> 4) * groups + group) * 16 + (row & 15);
}

// Plain quantization: q [N, K] int8 and scales [N] (PerChannel) or [N, G] (PerGroup128).
void quantizeInt8(const __nv_bfloat16* w, int n, int k, Int8Scheme scheme, int8_t* q, float* scales,
                  cudaStream_t stream);

// Repack a plain quantization into the GEMM's layout. dst.{qweight,scales,n,k,scheme} must be
// set (buffers of w8a16PackedBytes / w8a16ScaleCount); padding is written too.
void packW8A16(const int8_t* q, const float* scales, const W8A16Weight& dst, cudaStream_t stream);

// Quantize bf16 W [N, K] straight into the packed layout (no int8 [N, K] temporary): what the
// loader calls. dst as for packW8A16. Same bytes as quantizeInt8 followed by packW8A16.
void quantizeW8A16(const __nv_bfloat16* w, const W8A16Weight& dst, cudaStream_t stream);

// Dequantize the packed weight back to bf16 W'' [N, K] row-major: bf16_rn(q * s) (the product
// in fp32). For prefill-sized m the runtime may multiply this with cuBLAS instead of calling the
// W8A16 GEMM (see cuda/dev/w8a16/README.md for when that is faster). dst 16-byte aligned.
void dequantizeW8A16(const W8A16Weight& w, __nv_bfloat16* dst, cudaStream_t stream);

}  // namespace ivl::cuda
