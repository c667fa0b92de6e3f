// Symmetric int8 weight quantization (W8A16, issue #7), on the host. The numerics are
// exactly those of the CUDA kernels (cuda/quantize_int8.h), so this is their reference:
//
//   W : [N, K] (bf16 checkpoint values, widened to fp32 exactly)
//   per output channel : group = K    -> scales [N, 1]
//   per group of 128   : group = 128  -> scales [N, ceil(K / 128)] (the last group may be shorter)
//   s      = max |W[n, k]| over the row's group / 127      (fp32 division)
//   q[n,k] = clamp(rne(W[n, k] / s), -127, 127)              (fp32 division, round to nearest even)
//   a zero row / group gets s = 1 (and q = 0); -128 is never produced.
//   Dequantized weight: W'[n, k] = q[n, k] · s (the product in fp32).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace ivl {

constexpr int64_t kInt8Group = 128;  // group size of the per-group scheme

inline int64_t int8Groups(int64_t k, int64_t group) { return group <= 0 ? 1 : (k + group - 1) / group; }

inline float int8ScaleFromAbsMax(float amax) { return amax > 0.f ? amax / 127.f : 1.f; }

inline int8_t int8Quantize(float w, float s) {
  const float r = std::nearbyint(w / s);  // default rounding mode: to nearest, ties to even
  return int8_t(std::max(-127.f, std::min(127.f, r)));
}

// w [n, k] fp32 -> q [n, k] int8 and scales [n, int8Groups(k, group)]; group = k for per channel.
inline void quantizeInt8Rows(const float* w, int64_t n, int64_t k, int64_t group, int8_t* q, float* scales) {
  if (group <= 0 || group > k) group = std::max<int64_t>(k, 1);
  const int64_t G = int8Groups(k, group);
  for (int64_t r = 0; r < n; ++r) {
    const float* wr = w + r * k;
    int8_t* qr = q + r * k;
    for (int64_t g = 0; g < G; ++g) {
      const int64_t k0 = g * group, k1 = std::min(k, k0 + group);
      float amax = 0.f;
      for (int64_t c = k0; c < k1; ++c) amax = std::max(amax, std::fabs(wr[c]));
      const float s = int8ScaleFromAbsMax(amax);
      scales[r * G + g] = s;
      for (int64_t c = k0; c < k1; ++c) qr[c] = int8Quantize(wr[c], s);
    }
  }
}

}  // namespace ivl
