#include "image/tiles.h"

#include <cstring>
#include <optional>
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

// Runs the reference's resizes — the whole image to (S·cols, S·rows), and to S×S for
// the thumbnail — and hands each S-pixel piece of each output row to
// put(tile, y, pixels [S, 3]): canvas row yy, column block c is row yy % S of tile
// (yy / S)·cols + c (row-major crops); the thumbnail is tile cols·rows. No full-size
// canvas is kept: rows go straight to their tiles.
template <typename Put>
void forEachTileRow(const TileRequest& r, Put put) {
  check(r);
  const int S = r.tileSize;
  Resize canvas(r.rgb, r.width, r.height, S * r.cols, S * r.rows);
  std::vector<const Resize*> jobs{&canvas};
  std::vector<RowSink> sinks{[&](int yy, const uint8_t* row) {
    const int tileRow = yy / S, y = yy % S;
    for (int c = 0; c < r.cols; ++c) put(tileRow * r.cols + c, y, row + size_t(c) * S * 3);
  }};
  std::optional<Resize> thumb;
  if (r.thumbnail) {
    thumb.emplace(r.rgb, r.width, r.height, S, S);
    jobs.push_back(&*thumb);
    sinks.push_back([&](int yy, const uint8_t* row) { put(r.cols * r.rows, yy, row); });
  }
  runResizes(jobs, sinks, r.threads);
}

}  // namespace

int tileCount(const TileRequest& r) { return r.cols * r.rows + (r.thumbnail ? 1 : 0); }

void makeTiles(const TileRequest& r, float* out) {
  // torchvision: x.float().div(255), then (x - mean) / std, each step in float32. The
  // result depends on (channel, byte) only, so a 3x256 table gives the same floats.
  const float mean[3] = {0.485f, 0.456f, 0.406f};
  const float stdv[3] = {0.229f, 0.224f, 0.225f};
  float lut[3][256];
  for (int ch = 0; ch < 3; ++ch) {
    for (int v = 0; v < 256; ++v) {
      volatile float x = static_cast<float>(v) / 255.0f;  // volatile: one float32 rounding per step
      volatile float d = x - mean[ch];
      lut[ch][v] = d / stdv[ch];
    }
  }
  const size_t S = size_t(r.tileSize), plane = S * S;
  forEachTileRow(r, [&](int tile, int y, const uint8_t* px) {
    float* d0 = out + size_t(tile) * 3 * plane + size_t(y) * S;  // [3, S, S]
    float* d1 = d0 + plane;
    float* d2 = d1 + plane;
    for (size_t x = 0; x < S; ++x) {
      d0[x] = lut[0][px[3 * x]];
      d1[x] = lut[1][px[3 * x + 1]];
      d2[x] = lut[2][px[3 * x + 2]];
    }
  });
}

void makeTilesU8(const TileRequest& r, uint8_t* out) {
  const size_t S = size_t(r.tileSize);
  forEachTileRow(r, [&](int tile, int y, const uint8_t* px) {
    std::memcpy(out + (size_t(tile) * S + y) * S * 3, px, S * 3);
  });
}

}  // namespace ivl::image
