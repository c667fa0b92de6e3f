// Image preprocessing bindings: one call per image turns decoded RGB pixels into
// the model's tile tensor off the JS thread (lib/vision/image.ts decodes with sharp).
//   preprocessTiles(rgb, width, height, cols, rows, tileSize, thumbnail) -> Promise<Float32Array [T,3,S,S]>
//   tilesU8(...same...)                                                  -> Promise<Uint8Array [T,S,S,3]>
//   resizeRgb(rgb, width, height, outWidth, outHeight)                   -> Promise<Uint8Array>
#include <napi.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "image/pil_resample.h"
#include "image/tiles.h"
#include "napi/args.h"
#include "napi/exports.h"
#include "napi/promise_worker.h"

namespace ivl::napi {
namespace {

int defaultThreads() { return int(std::max(1u, std::min(8u, std::thread::hardware_concurrency()))); }

int intArg(const Napi::CallbackInfo& info, size_t i, const char* name, int lo, int hi) {
  double v = numberArg(info, i, name);
  if (v != double(int64_t(v)) || v < lo || v > hi) {
    throw ivl::Error(ivl::ErrorCode::InvalidArg, std::string("Expected integer between ") + std::to_string(lo) +
                                                     " and " + std::to_string(hi) + " for " + name);
  }
  return int(v);
}

// Reads (rgb, width, height) and checks the buffer holds exactly width·height·3 bytes.
struct RgbArgs {
  Napi::Uint8Array array;
  int width, height;
};

RgbArgs rgbArgs(const Napi::CallbackInfo& info) {
  RgbArgs a{typedArrayArg<uint8_t>(info, 0, "rgb", napi_uint8_array, "Uint8Array"), intArg(info, 1, "width", 1, 1 << 16),
            intArg(info, 2, "height", 1, 1 << 16)};
  if (a.array.ElementLength() != size_t(a.width) * a.height * 3) {
    throw ivl::Error(ivl::ErrorCode::InvalidArg, "rgb holds " + std::to_string(a.array.ElementLength()) +
                                                     " bytes but width*height*3 = " +
                                                     std::to_string(size_t(a.width) * a.height * 3));
  }
  return a;
}

template <typename T, typename Out>
class ImageWorker : public PromiseWorker {
 public:
  ImageWorker(Napi::Env env, Napi::Uint8Array input, size_t outLen, std::function<void(const uint8_t*, T*)> job)
      : PromiseWorker(env), ref_(Napi::Persistent(input)), in_(input.Data()), out_(outLen), job_(std::move(job)) {}

 protected:
  void run() override { job_(in_, out_.data()); }
  // Hands the result buffer to JS without copying (tens of MB for 13 tiles): the
  // ArrayBuffer owns the vector and frees it when collected.
  Napi::Value result(Napi::Env env) override {
    auto* owned = new std::vector<T>(std::move(out_));
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(
        env, owned->data(), owned->size() * sizeof(T),
        [](Napi::Env, void*, std::vector<T>* v) { delete v; }, owned);
    return Out::New(env, owned->size(), buf, 0);
  }

 private:
  Napi::Reference<Napi::Uint8Array> ref_;  // keeps the pixels alive while the worker reads them
  const uint8_t* in_;
  std::vector<T> out_;
  std::function<void(const uint8_t*, T*)> job_;
};

image::TileRequest tileRequest(const Napi::CallbackInfo& info, const RgbArgs& a) {
  image::TileRequest r;
  r.width = a.width;
  r.height = a.height;
  r.cols = intArg(info, 3, "cols", 1, 4096);
  r.rows = intArg(info, 4, "rows", 1, 4096);
  r.tileSize = intArg(info, 5, "tileSize", 14, 4096);
  r.thumbnail = info[6].ToBoolean().Value();
  r.threads = defaultThreads();
  return r;
}

template <typename T, typename Out, typename Fn>
Napi::Value queueTiles(const Napi::CallbackInfo& info, size_t elementsPerTile, Fn fn) {
  RgbArgs a = rgbArgs(info);
  image::TileRequest r = tileRequest(info, a);
  size_t n = size_t(image::tileCount(r)) * elementsPerTile * r.tileSize * r.tileSize;
  auto* w = new ImageWorker<T, Out>(info.Env(), a.array, n, [r, fn](const uint8_t* in, T* out) mutable {
    r.rgb = in;
    fn(r, out);
  });
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value PreprocessTiles(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    return queueTiles<float, Napi::Float32Array>(info, 3, [](const image::TileRequest& r, float* out) { image::makeTiles(r, out); });
  });
}

Napi::Value TilesU8(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    return queueTiles<uint8_t, Napi::Uint8Array>(info, 3, [](const image::TileRequest& r, uint8_t* out) { image::makeTilesU8(r, out); });
  });
}

Napi::Value ResizeRgb(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    RgbArgs a = rgbArgs(info);
    int ow = intArg(info, 3, "outWidth", 1, 1 << 16), oh = intArg(info, 4, "outHeight", 1, 1 << 16);
    int w = a.width, h = a.height, threads = defaultThreads();
    auto* worker = new ImageWorker<uint8_t, Napi::Uint8Array>(
        info.Env(), a.array, size_t(ow) * oh * 3,
        [=](const uint8_t* in, uint8_t* out) { image::resizeBicubic(in, w, h, out, ow, oh, threads); });
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  });
}

void init(Napi::Env env, Napi::Object exports) {
  exports.Set("preprocessTiles", Napi::Function::New(env, PreprocessTiles, "preprocessTiles"));
  exports.Set("tilesU8", Napi::Function::New(env, TilesU8, "tilesU8"));
  exports.Set("resizeRgb", Napi::Function::New(env, ResizeRgb, "resizeRgb"));
}

}  // namespace
}  // namespace ivl::napi

IVL_REGISTER_EXPORTS(ivl::napi::init);
