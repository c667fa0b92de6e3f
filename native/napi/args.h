// Argument readers for bindings: each throws ERR_INVALID_ARG naming the argument and
// what it received, so JS callers get sharp-style messages even from native code.
#pragma once
#include <napi.h>

#include <string>

#include "runtime/error.h"

namespace ivl::napi {

inline const char* jsTypeName(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: return v.IsTypedArray() ? "typed array" : v.IsArray() ? "array" : "object";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
  }
  return "unknown";
}

[[noreturn]] inline void badArg(const std::string& name, const std::string& expected, const Napi::Value& v) {
  throw ivl::Error(ivl::ErrorCode::InvalidArg,
                   "Expected " + expected + " for " + name + " but received " + jsTypeName(v));
}

template <typename T>
Napi::TypedArrayOf<T> typedArrayArg(const Napi::CallbackInfo& info, size_t i, const char* name,
                                    napi_typedarray_type type, const char* typeName) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) badArg(name, typeName, v);
  return v.As<Napi::TypedArrayOf<T>>();
}

inline std::string stringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsString()) badArg(name, "string", v);
  return v.As<Napi::String>().Utf8Value();
}

inline double numberArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) badArg(name, "number", v);
  return v.As<Napi::Number>().DoubleValue();
}

}  // namespace ivl::napi
