// Each napi/*.cpp registers its own exports with IVL_REGISTER_EXPORTS, so adding a
// binding never edits a central list (the module init walks the registry).
#pragma once
#include <napi.h>

namespace ivl::napi {

using ExportInit = void (*)(Napi::Env env, Napi::Object exports);

struct ExportRegistrar {
  explicit ExportRegistrar(ExportInit init);
};

void initAllExports(Napi::Env env, Napi::Object exports);

}  // namespace ivl::napi

#define IVL_EXPORTS_CONCAT2(a, b) a##b
#define IVL_EXPORTS_CONCAT(a, b) IVL_EXPORTS_CONCAT2(a, b)
#define IVL_REGISTER_EXPORTS(fn) \
  static ::ivl::napi::ExportRegistrar IVL_EXPORTS_CONCAT(ivlRegistrar_, __LINE__)(fn)
