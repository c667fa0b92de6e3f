// The reference tile tensor: the image resized to (S·cols, S·rows), cut row-major
// into cols·rows tiles of S×S, plus (when asked) the whole image resized to S×S
// last; each pixel normalized as torchvision's ToTensor + Normalize(ImageNet) do.
#pragma once
#include <cstdint>

namespace ivl::image {

struct TileRequest {
  const uint8_t* rgb = nullptr;  // [height, width, 3]
  int width = 0;
  int height = 0;
  int cols = 1;
  int rows = 1;
  int tileSize = 448;
  bool thumbnail = false;  // append the S×S thumbnail (the reference does when cols·rows > 1)
  int threads = 1;
};

int tileCount(const TileRequest& r);

// out [tileCount, 3, S, S] f32.
void makeTiles(const TileRequest& r, float* out);

// The same tiles before normalization: out [tileCount, S, S, 3] uint8 (tests compare these with PIL).
void makeTilesU8(const TileRequest& r, uint8_t* out);

}  // namespace ivl::image
