#include "runtime/bicubic.h"

#include <algorithm>
#include <cmath>

namespace ivl {

namespace {

// aten/src/ATen/native/UpSample.h, in float (the opmath type of a float tensor).
constexpr float kA = -0.75f;

inline float cubicConvolution1(float x, float A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
inline float cubicConvolution2(float x, float A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

inline void cubicCoefficients(float coeffs[4], float t) {
  float x1 = t;
  coeffs[0] = cubicConvolution2(x1 + 1.0f, kA);
  coeffs[1] = cubicConvolution1(x1, kA);
  float x2 = 1.0f - t;
  coeffs[2] = cubicConvolution1(x2, kA);
  coeffs[3] = cubicConvolution2(x2 + 1.0f, kA);
}

// For each output index: the 4 clamped source indices and their weights.
struct Taps {
  int64_t idx[4];
  float w[4];
};

std::vector<Taps> taps(int64_t inSize, int64_t outSize) {
  // area_pixel_compute_scale (no explicit scale, align_corners=False): in / out.
  const float scale = float(inSize) / float(outSize);
  std::vector<Taps> out(static_cast<size_t>(outSize));
  for (int64_t o = 0; o < outSize; ++o) {
    // area_pixel_compute_source_index(cubic=true): not clamped at 0.
    const float real = scale * (float(o) + 0.5f) - 0.5f;
    // guard_index_and_lambda
    const int64_t index = std::min(int64_t(std::floor(real)), inSize - 1);
    const float t = std::min(std::max(real - float(index), 0.0f), 1.0f);
    Taps& tp = out[size_t(o)];
    cubicCoefficients(tp.w, t);
    for (int j = 0; j < 4; ++j) tp.idx[j] = std::max<int64_t>(0, std::min(index - 1 + j, inSize - 1));
  }
  return out;
}

}  // namespace

std::vector<float> bicubicResize(const float* in, int64_t inH, int64_t inW, int64_t C, int64_t outH, int64_t outW) {
  std::vector<float> out(size_t(outH * outW * C));  // [outH, outW, C]
  const std::vector<Taps> ty = taps(inH, outH), tx = taps(inW, outW);
  for (int64_t oy = 0; oy < outH; ++oy) {
    const Taps& y = ty[size_t(oy)];
    for (int64_t ox = 0; ox < outW; ++ox) {
      const Taps& x = tx[size_t(ox)];
      for (int64_t c = 0; c < C; ++c) {
        // Four horizontal interpolations (rows y-1..y+2), then one vertical.
        float rowsInterp[4];
        for (int i = 0; i < 4; ++i) {
          const float* row = in + y.idx[i] * inW * C;
          rowsInterp[i] = row[x.idx[0] * C + c] * x.w[0] + row[x.idx[1] * C + c] * x.w[1] +
                          row[x.idx[2] * C + c] * x.w[2] + row[x.idx[3] * C + c] * x.w[3];
        }
        out[size_t((oy * outW + ox) * C + c)] =
            rowsInterp[0] * y.w[0] + rowsInterp[1] * y.w[1] + rowsInterp[2] * y.w[2] + rowsInterp[3] * y.w[3];
      }
    }
  }
  return out;
}

}  // namespace ivl
