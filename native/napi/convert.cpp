// bf16ToF32(Uint16Array) -> Promise<Float32Array>: widening off the JS thread.
// Used by tests and tools that read bf16 tensors; also the smallest proof that
// async work, typed arrays and coded errors all cross the boundary.
#include <napi.h>

#include <cstdint>
#include <vector>

#include "napi/args.h"
#include "napi/exports.h"
#include "napi/promise_worker.h"
#include "runtime/bf16.h"

namespace ivl::napi {
namespace {

class Bf16ToF32Worker : public PromiseWorker {
 public:
  Bf16ToF32Worker(Napi::Env env, Napi::Uint16Array input)
      : PromiseWorker(env), inputRef_(Napi::Persistent(input)),
        in_(input.Data()), n_(input.ElementLength()) {}

 protected:
  void run() override {
    out_.resize(n_);  // [n] f32
    for (size_t i = 0; i < n_; ++i) out_[i] = bf16ToF32(in_[i]);
  }

  Napi::Value result(Napi::Env env) override {
    Napi::Float32Array arr = Napi::Float32Array::New(env, n_);
    std::copy(out_.begin(), out_.end(), arr.Data());
    return arr;
  }

 private:
  Napi::Reference<Napi::Uint16Array> inputRef_;  // keeps the source alive while we read it
  const uint16_t* in_;
  size_t n_;
  std::vector<float> out_;
};

Napi::Value Bf16ToF32(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Uint16Array input = typedArrayArg<uint16_t>(info, 0, "input", napi_uint16_array, "Uint16Array");
    auto* worker = new Bf16ToF32Worker(info.Env(), input);
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  });
}

void init(Napi::Env env, Napi::Object exports) {
  exports.Set("bf16ToF32", Napi::Function::New(env, Bf16ToF32, "bf16ToF32"));
}

}  // namespace
}  // namespace ivl::napi

IVL_REGISTER_EXPORTS(ivl::napi::init);
