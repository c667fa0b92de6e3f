// Module entry point: the only NODE_API_MODULE in the addon.
#include <napi.h>

#include "napi/exports.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ivl::napi::initAllExports(env, exports);
  return exports;
}

NODE_API_MODULE(internvl, Init)
