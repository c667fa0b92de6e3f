#include "napi/exports.h"

#include <vector>

namespace ivl::napi {

// Function-local so registration from other translation units' static
// initializers is safe whatever their order.
static std::vector<ExportInit>& registry() {
  static std::vector<ExportInit> inits;
  return inits;
}

ExportRegistrar::ExportRegistrar(ExportInit init) { registry().push_back(init); }

void initAllExports(Napi::Env env, Napi::Object exports) {
  for (ExportInit init : registry()) init(env, exports);
}

}  // namespace ivl::napi
