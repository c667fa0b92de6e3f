#include "napi/errors.h"

namespace ivl::napi {

Napi::Error codedError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Value().Set("code", Napi::String::New(env, code));
  return err;
}

CapturedError CapturedError::fromCurrentException() {
  try {
    throw;
  } catch (const ivl::Error& e) {
    return {e.codeName(), e.what()};
  } catch (const std::bad_alloc&) {
    return {"ERR_OOM", "out of host memory"};
  } catch (const std::exception& e) {
    return {"ERR_INTERNAL", std::string("internal error: ") + e.what()};
  } catch (...) {
    return {"ERR_INTERNAL", "internal error: unknown exception"};
  }
}

Napi::Error currentExceptionToJs(Napi::Env env) {
  CapturedError c = CapturedError::fromCurrentException();
  return codedError(env, c.code.c_str(), c.message);
}

}  // namespace ivl::napi
