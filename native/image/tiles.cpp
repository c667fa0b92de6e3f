#include "image/tiles.h"

#include <cstring>
#include <string>
#include <vector>

#include "image/pil_resample.h"
#include "runtime/error.h"

namespace ivl::image {
namespace {

void check(const TileRequest& r) {
  require(r.rgb != nullptr && r.width > 0 && r.height > 0, ErrorCode::InvalidArg, "tiles: empty image");
  require(r.cols >= 1 && r.rows >= 1 && r.cols * r.rows <= 4096, ErrorCode::InvalidArg,
          "tiles: grid " + std::to_string(r.cols) + "x" + std::to_string(r.rows) + " out of range");
  require(r.tileSize >= 14 && r.tileSize <= 4096, ErrorCode::InvalidArg,
          "tiles: tile size " + std::to_string(r.tileSize) + " out of range");
}

// Calls emit(tileIndex, rgbTile [S, S, 3]) for each tile in reference order.
template <typename Emit>
void forEachTile(const TileRequest& r, Emit emit) {
  check(r);
  const int S = r.tileSize;
  const int W = S * r.cols, H = S * r.rows;
  std::vector<uint8_t> canvas(size_t(W) * H * 3);  // [H, W, 3]
  resizeBicubic(r.rgb, r.width, r.height, canvas.data(), W, H, r.threads);
  std::vector<uint8_t> tile(size_t(S) * S * 3);  // [S, S, 3]
  for (int i = 0; i < r.cols * r.rows; ++i) {
    int c = i % r.cols, row = i / r.cols;
    for (int y = 0; y < S; ++y) {
      std::memcpy(&tile[size_t(y) * S * 3], &canvas[(size_t(row) * S + y) * W * 3 + size_t(c) * S * 3], size_t(S) * 3);
    }
    emit(i, tile.data());
  }
  if (r.thumbnail) {
    resizeBicubic(r.rgb, r.width, r.height, tile.data(), S, S, r.threads);
    emit(r.cols * r.rows, tile.data());
  }
}

}  // namespace

int tileCount(const TileRequest& r) { return r.cols * r.rows + (r.thumbnail ? 1 : 0); }

void makeTiles(const TileRequest& r, float* out) {
  // torchvision: x.float().div(255), then (x - mean) / std, each step in float32.
  const float mean[3] = {0.485f, 0.456f, 0.406f};
  const float stdv[3] = {0.229f, 0.224f, 0.225f};
  const size_t plane = size_t(r.tileSize) * r.tileSize;
  forEachTile(r, [&](int i, const uint8_t* tile) {
    float* dst = out + size_t(i) * 3 * plane;  // [3, S, S]
    for (size_t p = 0; p < plane; ++p) {
      for (int ch = 0; ch < 3; ++ch) {
        float v = static_cast<float>(tile[p * 3 + ch]) / 255.0f;
        v = v - mean[ch];
        dst[ch * plane + p] = v / stdv[ch];
      }
    }
  });
}

void makeTilesU8(const TileRequest& r, uint8_t* out) {
  const size_t bytes = size_t(r.tileSize) * r.tileSize * 3;
  forEachTile(r, [&](int i, const uint8_t* tile) { std::memcpy(out + size_t(i) * bytes, tile, bytes); });
}

}  // namespace ivl::image
