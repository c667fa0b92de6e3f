// PyTorch's F.interpolate(mode='bicubic', align_corners=False) on a 2-D grid, in
// fp32 with the same arithmetic (cubic convolution A = -0.75, source index
// scale·(dst + 0.5) − 0.5 unclamped, border taps clamped, x pass then y pass).
// InternVisionEmbeddings._get_pos_embed resizes the position-embedding grid with it
// when the tile size differs from the checkpoint's image size.
#pragma once
#include <cstdint>
#include <vector>

namespace ivl {

// in [inH, inW, C] (channels last) -> out [outH, outW, C].
std::vector<float> bicubicResize(const float* in, int64_t inH, int64_t inW, int64_t C, int64_t outH, int64_t outW);

}  // namespace ivl
