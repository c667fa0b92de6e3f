// An AsyncWorker that settles a Promise: Execute() runs on a libuv pool thread and
// may throw ivl::Error (or anything); the rejection carries the stable code.
// Short jobs only: long-lived generation belongs to the engine thread, not the pool.
#pragma once
#include <napi.h>

#include <optional>

#include "napi/errors.h"

namespace ivl::napi {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  // Work off the JS thread. Must not touch Napi values.
  virtual void run() = 0;
  // Builds the resolution value on the JS thread.
  virtual Napi::Value result(Napi::Env env) = 0;

 private:
  void Execute() final {
    try {
      run();
    } catch (...) {
      error_ = CapturedError::fromCurrentException();
    }
  }

  void OnOK() final {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (error_) {
      deferred_.Reject(codedError(env, error_->code.c_str(), error_->message).Value());
      return;
    }
    try {
      deferred_.Resolve(result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(currentExceptionToJs(env).Value());
    }
  }

  void OnError(const Napi::Error& e) final { deferred_.Reject(e.Value()); }

  Napi::Promise::Deferred deferred_;
  std::optional<CapturedError> error_;
};

}  // namespace ivl::napi
