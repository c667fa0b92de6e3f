// Fuzz target: the strict JSON reader (native/runtime/json.cpp) that parses every
// safetensors header and model.safetensors.index.json before anything else does.
// Any input must either parse or throw json::JsonError; anything else (another
// exception, a sanitizer report, a crash, a hang) is a finding. A parsed value is
// walked in full, and its integers must agree with their double value.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "runtime/json.h"

namespace {

size_t walk(const ivl::json::Value& v, int depth) {
  if (depth > 200) abort();  // the reader promises a nesting limit of 128
  size_t n = 1;
  switch (v.type()) {
    case ivl::json::Value::Type::Number:
      if (v.isInteger() && std::fabs(double(v.asInt()) - v.asDouble()) > std::fabs(v.asDouble()) * 1e-15 + 1) abort();
      break;
    case ivl::json::Value::Type::Array:
      for (const auto& e : v.asArray()) n += walk(e, depth + 1);
      break;
    case ivl::json::Value::Type::Object:
      for (const auto& [k, e] : v.members()) {
        if (v.find(k) != &e) abort();  // lookup finds each member, keys are unique
        n += walk(e, depth + 1);
      }
      if (v.find("\x01no such key") != nullptr) abort();
      break;
    default:
      (void)v.typeName();
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    ivl::json::Value v = ivl::json::parse(std::string_view(reinterpret_cast<const char*>(data), size));
    walk(v, 0);
  } catch (const ivl::json::JsonError& e) {
    if (e.offset() > size) abort();  // the offset points into the input
  }
  return 0;
}
