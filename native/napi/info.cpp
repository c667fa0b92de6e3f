// info(): what this build of the addon can do, asked once by lib/native.ts.
#include <napi.h>

#include <thread>

#include "napi/errors.h"
#include "napi/exports.h"

#ifdef INTERNVL_WITH_CUDA
#include "cuda/devices.h"
#endif

namespace ivl::napi {
namespace {

Napi::Value cudaReport(Napi::Env env) {
  Napi::Object cuda = Napi::Object::New(env);
#ifdef INTERNVL_WITH_CUDA
  cuda::DeviceReport r = cuda::queryDevices();
  cuda.Set("compiled", true);
  cuda.Set("driverVersion", r.driverVersion);
  cuda.Set("runtimeVersion", r.runtimeVersion);
  cuda.Set("cublasVersion", r.cublasVersion);
  cuda.Set("cublasLtVersion", static_cast<double>(r.cublasLtVersion));
  Napi::Array devices = Napi::Array::New(env, r.devices.size());
  for (size_t i = 0; i < r.devices.size(); ++i) {
    const cuda::DeviceInfo& d = r.devices[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", d.index);
    o.Set("name", d.name);
    o.Set("computeCapability", std::to_string(d.computeMajor) + "." + std::to_string(d.computeMinor));
    o.Set("multiprocessors", d.multiprocessors);
    o.Set("totalMemory", static_cast<double>(d.totalMemory));
    o.Set("freeMemory", static_cast<double>(d.freeMemory));
    devices[i] = o;
  }
  cuda.Set("devices", devices);
  if (!r.problem.empty()) cuda.Set("problem", r.problem);
#else
  cuda.Set("compiled", false);
  cuda.Set("devices", Napi::Array::New(env));
  cuda.Set("problem", "this build of the addon has no CUDA backend (no CUDA toolkit with cuBLAS at build time)");
#endif
  return cuda;
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Object out = Napi::Object::New(env);
    out.Set("version", INTERNVL_VERSION);
    Napi::Object cuda = cudaReport(env).As<Napi::Object>();
    bool cudaUsable = cuda.Get("devices").As<Napi::Array>().Length() > 0;
    Napi::Array backends = Napi::Array::New(env);
    backends[uint32_t(0)] = Napi::String::New(env, "cpu");
    if (cudaUsable) backends[uint32_t(1)] = Napi::String::New(env, "cuda");
    out.Set("backends", backends);
    out.Set("cuda", cuda);
    out.Set("hardwareConcurrency", static_cast<double>(std::thread::hardware_concurrency()));
    return out;
  });
}

void init(Napi::Env env, Napi::Object exports) { exports.Set("info", Napi::Function::New(env, Info, "info")); }

}  // namespace
}  // namespace ivl::napi

IVL_REGISTER_EXPORTS(ivl::napi::init);
