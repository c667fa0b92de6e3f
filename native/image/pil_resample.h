// Pillow-exact antialiased bicubic resampling of 8-bit RGB images.
//
// The reference preprocessing (model card: PIL Image.resize, default BICUBIC) is
// reproduced integer for integer: separable passes (horizontal, then vertical over
// only the rows the vertical pass reads), cubic kernel a = -0.5 with support scaled
// by the downscale factor, per-output coefficients normalized in double then turned
// into 22-bit fixed point, round-half-up accumulation and clipping to uint8 between
// passes. Built from Pillow's documented algorithm (src/libImaging/Resample.c).
//
// Speed: both passes multiply 24 or 32 int32 lanes at a time by one coefficient (AVX2
// where the CPU has it, chosen at run time; plain loops otherwise). Integer sums do not
// depend on their order, so every path gives Pillow's bytes.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace ivl::image {

// Per output pixel along one axis: the first input index, the tap count, and ksize
// 22-bit fixed-point weights (unused taps zero). Pillow's precompute_coeffs +
// normalize_coeffs_8bpc for the box (0, inSize).
struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;   // [out, 2]: xmin, count
  std::vector<int32_t> kk;   // [out, ksize]
};
Coeffs precomputeCoeffs(int inSize, int outSize);

// src [srcH, srcW, 3] -> dst [dstH, dstW, 3]. Same size returns a copy (as PIL does).
// threads > 1 splits rows across threads; the result does not depend on it.
void resizeBicubic(const uint8_t* src, int srcW, int srcH, uint8_t* dst, int dstW, int dstH, int threads);

// Receives output row yy ([dstW, 3] bytes, valid during the call). Called once per row,
// from any of the worker threads, in no particular order across row ranges.
using RowSink = std::function<void(int yy, const uint8_t* row)>;

// One resize as a stream of output rows, so that callers can consume rows (crop,
// normalize) without a full-size intermediate image.
class Resize {
 public:
  Resize(const uint8_t* src, int srcW, int srcH, int dstW, int dstH);
  int rows() const { return dstH_; }
  // Work estimate (multiply-adds) for scheduling.
  double cost() const;
  // Produces output rows [y0, y1) on the calling thread.
  void run(int y0, int y1, const RowSink& sink) const;

 private:
  const uint8_t* src_;
  int srcW_, srcH_, dstW_, dstH_;
  bool needH_, needV_;
  Coeffs ch_, cv_;
};

// Runs several resizes (of one or more images) on `threads` threads, cut into row
// chunks of similar cost; sinks[i] gets the rows of jobs[i].
void runResizes(const std::vector<const Resize*>& jobs, const std::vector<RowSink>& sinks, int threads);

}  // namespace ivl::image
