// Pillow-exact antialiased bicubic resampling of 8-bit RGB images.
//
// The reference preprocessing (model card: PIL Image.resize, default BICUBIC) is
// reproduced integer for integer: separable passes (horizontal, then vertical over
// only the rows the vertical pass reads), cubic kernel a = -0.5 with support scaled
// by the downscale factor, per-output coefficients normalized in double then turned
// into 22-bit fixed point, round-half-up accumulation and clipping to uint8 between
// passes. Built from Pillow's documented algorithm (src/libImaging/Resample.c).
#pragma once
#include <cstdint>
#include <vector>

namespace ivl::image {

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // [height, width, 3] row-major
};

// src [srcH, srcW, 3] -> dst [dstH, dstW, 3]. Same size returns a copy (as PIL does).
// threads > 1 splits rows across threads; the result does not depend on it.
void resizeBicubic(const uint8_t* src, int srcW, int srcH, uint8_t* dst, int dstW, int dstH, int threads);

}  // namespace ivl::image
