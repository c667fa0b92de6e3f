// How native failures cross into JS: every exception becomes a JS Error carrying a
// stable `code` (ERR_*), which lib/errors.ts rewraps as InternVLError with the
// caller's stack. Nothing else may escape a binding.
#pragma once
#include <napi.h>

#include <exception>
#include <new>
#include <string>

#include "runtime/error.h"

namespace ivl::napi {

Napi::Error codedError(Napi::Env env, const char* code, const std::string& message);

// Maps the exception in flight (call inside a catch block) to a coded JS error.
Napi::Error currentExceptionToJs(Napi::Env env);

// Code + message captured off the JS thread (an AsyncWorker's Execute), turned into
// a JS error later on the JS thread.
struct CapturedError {
  std::string code;
  std::string message;
  static CapturedError fromCurrentException();
};

// Runs fn, converting any C++ exception into a thrown JS error with a code.
template <typename Fn>
Napi::Value guarded(Napi::Env env, Fn&& fn) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;  // already a JS error (NAPI_CPP_EXCEPTIONS rethrows it into JS)
  } catch (...) {
    throw currentExceptionToJs(env);
  }
}

}  // namespace ivl::napi
