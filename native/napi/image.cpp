// Image preprocessing bindings: one call per image turns decoded RGB pixels into
// the model's tile tensor off the JS thread (lib/vision/image.ts decodes with sharp).
//   preprocessTiles(rgb, width, height, cols, rows, tileSize, thumbnail, out?) -> Promise<Float32Array [T,3,S,S]>
//       (writes into `out` when given — a Float32Array of exactly T·3·S·S — and resolves with it)
//   tilesU8(rgb, width, height, cols, rows, tileSize, thumbnail)             -> Promise<Uint8Array [T,S,S,3]>
//   resizeRgb(rgb, width, height, outWidth, outHeight)                        -> Promise<Uint8Array>
//   allocFloat32(length)                                                      -> Promise<Float32Array>
//       (memory obtained and touched off the JS thread: first-touch page faults cost
//        ~0.5-0.8 ms per MB on small VMs, so loadImage does this while sharp decodes)
#include <napi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
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

// A heap block handed to JS as an external ArrayBuffer: V8 is told its size (so
// garbage collection accounts for it) and frees it through the finalizer.
template <typename T>
struct Block {
  T* data = nullptr;
  size_t length = 0;

  static Block allocate(size_t length) {
    Block b;
    b.length = length;
    b.data = static_cast<T*>(std::malloc(std::max<size_t>(1, length * sizeof(T))));
    if (b.data == nullptr) throw ivl::Error(ivl::ErrorCode::OutOfMemory, "out of memory for image tiles");
    return b;
  }
  // Touches every page so that the page faults happen here, not in the hot loops.
  void touch() {
    auto* bytes = reinterpret_cast<volatile uint8_t*>(data);
    const size_t n = length * sizeof(T);
    for (size_t i = 0; i < n; i += 4096) bytes[i] = 0;
  }
  template <typename Out>
  Napi::Value toJs(Napi::Env env) {
    const int64_t bytes = int64_t(length * sizeof(T));
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(
        env, data, length * sizeof(T),
        [](Napi::Env e, void* p, int64_t* n) {
          Napi::MemoryManagement::AdjustExternalMemory(e, -*n);
          delete n;
          std::free(p);
        },
        new int64_t(bytes));
    Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
    data = nullptr;  // owned by the ArrayBuffer now
    return Out::New(env, length, buf, 0);
  }
  void release() {
    std::free(data);
    data = nullptr;
  }
};

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

// Runs job(input pixels, output) on a pool thread. The output is either a typed array
// the caller passed (kept alive by a reference and resolved as is) or a fresh block.
template <typename T, typename Out>
class ImageWorker : public PromiseWorker {
 public:
  using Job = std::function<void(const uint8_t*, T*)>;
  ImageWorker(Napi::Env env, Napi::Uint8Array input, size_t outLen, Job job)
      : PromiseWorker(env), in_ref_(Napi::Persistent(input)), in_(input.Data()), out_len_(outLen), job_(std::move(job)) {}
  ImageWorker(Napi::Env env, Napi::Uint8Array input, Out out, Job job)
      : PromiseWorker(env), in_ref_(Napi::Persistent(input)), out_ref_(Napi::Persistent(out)), in_(input.Data()),
        out_ptr_(out.Data()), out_len_(out.ElementLength()), job_(std::move(job)) {}
  ~ImageWorker() override { block_.release(); }

 protected:
  void run() override {
    if (out_ptr_ == nullptr) {
      block_ = Block<T>::allocate(out_len_);
      out_ptr_ = block_.data;
    }
    job_(in_, out_ptr_);
  }
  Napi::Value result(Napi::Env env) override {
    if (!out_ref_.IsEmpty()) return out_ref_.Value();
    return block_.template toJs<Out>(env);
  }

 private:
  Napi::Reference<Napi::Uint8Array> in_ref_;  // keeps the pixels alive while the worker reads them
  Napi::Reference<Out> out_ref_;
  const uint8_t* in_;
  T* out_ptr_ = nullptr;
  size_t out_len_;
  Block<T> block_;
  Job job_;
};

class AllocWorker : public PromiseWorker {
 public:
  AllocWorker(Napi::Env env, size_t length) : PromiseWorker(env), length_(length) {}
  ~AllocWorker() override { block_.release(); }

 protected:
  void run() override {
    block_ = Block<float>::allocate(length_);
    block_.touch();
  }
  Napi::Value result(Napi::Env env) override { return block_.toJs<Napi::Float32Array>(env); }

 private:
  size_t length_;
  Block<float> block_;
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

Napi::Value PreprocessTiles(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    RgbArgs a = rgbArgs(info);
    image::TileRequest r = tileRequest(info, a);
    const size_t n = size_t(image::tileCount(r)) * 3 * r.tileSize * r.tileSize;
    auto job = [r](const uint8_t* in, float* out) mutable {
      r.rgb = in;
      image::makeTiles(r, out);
    };
    ImageWorker<float, Napi::Float32Array>* w;
    if (info.Length() > 7 && !info[7].IsUndefined()) {
      auto out = typedArrayArg<float>(info, 7, "out", napi_float32_array, "Float32Array");
      if (out.ElementLength() != n) {
        throw ivl::Error(ivl::ErrorCode::InvalidArg, "out holds " + std::to_string(out.ElementLength()) +
                                                         " floats but the tiles need " + std::to_string(n));
      }
      w = new ImageWorker<float, Napi::Float32Array>(info.Env(), a.array, out, job);
    } else {
      w = new ImageWorker<float, Napi::Float32Array>(info.Env(), a.array, n, job);
    }
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

Napi::Value TilesU8(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    RgbArgs a = rgbArgs(info);
    image::TileRequest r = tileRequest(info, a);
    const size_t n = size_t(image::tileCount(r)) * 3 * r.tileSize * r.tileSize;
    auto* w = new ImageWorker<uint8_t, Napi::Uint8Array>(info.Env(), a.array, n, [r](const uint8_t* in, uint8_t* out) mutable {
      r.rgb = in;
      image::makeTilesU8(r, out);
    });
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
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

Napi::Value AllocFloat32(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    double v = numberArg(info, 0, "length");
    if (v != double(int64_t(v)) || v < 0 || v > double(1ull << 34)) {
      throw ivl::Error(ivl::ErrorCode::InvalidArg, "Expected integer between 0 and 2^34 for length");
    }
    auto* w = new AllocWorker(info.Env(), size_t(v));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

void init(Napi::Env env, Napi::Object exports) {
  exports.Set("preprocessTiles", Napi::Function::New(env, PreprocessTiles, "preprocessTiles"));
  exports.Set("tilesU8", Napi::Function::New(env, TilesU8, "tilesU8"));
  exports.Set("resizeRgb", Napi::Function::New(env, ResizeRgb, "resizeRgb"));
  exports.Set("allocFloat32", Napi::Function::New(env, AllocFloat32, "allocFloat32"));
}

}  // namespace
}  // namespace ivl::napi

IVL_REGISTER_EXPORTS(ivl::napi::init);
