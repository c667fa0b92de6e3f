// quantizeInt8(bf16 Uint16Array [rows·cols], rows, cols, scheme, x?, m?, kernels?) ->
//   { q: Int8Array [rows·cols], scales: Float32Array [rows·G], y?: Float32Array [m·rows] }
// The CPU backend's load-time quantization (WeightUse::Int8*) and, when x [m, cols] is
// given, its I8 matmul y = x · W'ᵀ; for tests against a plain JS reference. Synchronous.
#include <napi.h>

#include <cstring>
#include <string>

#include "cpu/cpu_backend.h"
#include "napi/args.h"
#include "napi/errors.h"
#include "napi/exports.h"

namespace ivl::napi {
namespace {

Napi::Value QuantizeInt8(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Uint16Array w = typedArrayArg<uint16_t>(info, 0, "weights", napi_uint16_array, "Uint16Array");
    const double rows = numberArg(info, 1, "rows"), cols = numberArg(info, 2, "cols");
    if (rows < 1 || cols < 1 || rows != double(int64_t(rows)) || cols != double(int64_t(cols)) ||
        double(w.ElementLength()) != rows * cols) {
      throw Error(ErrorCode::InvalidArg, "quantizeInt8: weights must hold rows·cols bf16 values");
    }
    const std::string scheme = stringArg(info, 3, "scheme");
    WeightUse use;
    if (scheme == "per-channel") use = WeightUse::Int8PerChannel;
    else if (scheme == "per-group-128") use = WeightUse::Int8PerGroup128;
    else throw Error(ErrorCode::InvalidArg, "quantizeInt8: scheme must be 'per-channel' or 'per-group-128'");
    const bool plain = info.Length() > 6 && info[6].IsString() && info[6].As<Napi::String>().Utf8Value() == "plain";
    cpu::CpuBackend be(1, plain);
    const int64_t N = int64_t(rows), K = int64_t(cols);
    Tensor t = be.weightFromHost(w.Data(), DType::BF16, {N, K}, use);
    Napi::Object out = Napi::Object::New(env);
    Napi::Int8Array q = Napi::Int8Array::New(env, size_t(N * K));
    std::memcpy(q.Data(), t.raw(), size_t(N * K));
    const Tensor& sc = t.scales();
    Napi::Float32Array s = Napi::Float32Array::New(env, size_t(sc.numel()));
    std::memcpy(s.Data(), sc.raw(), sc.nbytes());
    out.Set("q", q);
    out.Set("scales", s);
    if (info.Length() > 4 && !info[4].IsUndefined()) {
      Napi::Float32Array x = typedArrayArg<float>(info, 4, "x", napi_float32_array, "Float32Array");
      const double m = numberArg(info, 5, "m");
      if (m < 0 || double(x.ElementLength()) != m * cols) {
        throw Error(ErrorCode::InvalidArg, "quantizeInt8: x must hold m·cols values");
      }
      Tensor xt = be.uploadF32(x.Data(), {int64_t(m), K});
      Tensor yt = be.alloc(DType::F32, {int64_t(m), N});
      be.matmul(yt, xt, t, nullptr);
      Napi::Float32Array y = Napi::Float32Array::New(env, size_t(yt.numel()));
      be.downloadF32(yt, y.Data());
      out.Set("y", y);
    }
    return out;
  });
}

void init(Napi::Env env, Napi::Object exports) {
  exports.Set("quantizeInt8", Napi::Function::New(env, QuantizeInt8, "quantizeInt8"));
}

}  // namespace
}  // namespace ivl::napi

IVL_REGISTER_EXPORTS(ivl::napi::init);
