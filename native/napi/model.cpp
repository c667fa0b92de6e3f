// loadModel(dir, spec, options) -> Promise<NativeModel>, and the NativeModel object:
// info / encodeImages / encodeVit / generate / dispose (lib/nativeTypes.ts).
//
// Threads:
//   - loadModel, encodeImages, encodeVit: PromiseWorker (a libuv pool thread, short jobs).
//   - generate: submits the request to the engine thread (runtime/scheduler.h), which
//     batches it with every other running request; nothing waits on the JS side and no
//     pool thread is held. Tokens and the completion travel back through a
//     ThreadSafeFunction with non-blocking calls (the engine thread never waits for
//     JS); the TSFN's finalizer waits until the engine has retired the request (it
//     has by then, except at environment teardown) and frees the job. cancel() sets
//     the request's flag; the engine drops it before its next step.
//   - dispose(): cancels every request (each promise resolves, 'aborted'), joins the
//     engine thread and drops the engine; in-flight encode jobs keep it alive until
//     they finish.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <future>
#include <memory>
#include <optional>

#include "cpu/cpu_backend.h"
#ifdef INTERNVL_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif
#include "napi/args.h"
#include "napi/errors.h"
#include "napi/exports.h"
#include "napi/model_args.h"
#include "napi/promise_worker.h"
#include "runtime/engine.h"
#include "runtime/fault_injection.h"
#include "runtime/scheduler.h"

namespace ivl::napi {
namespace {

Napi::Float32Array toFloat32Array(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

Napi::Int32Array toInt32Array(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

const char* finishName(FinishReason f) {
  switch (f) {
    case FinishReason::Eos: return "eos";
    case FinishReason::Length: return "length";
    case FinishReason::Aborted: return "aborted";
  }
  return "aborted";
}

Napi::Value resultsToJs(Napi::Env env, const std::vector<SequenceResult>& results) {
  Napi::Array out = Napi::Array::New(env, results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    const SequenceResult& r = results[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("tokenIds", toInt32Array(env, r.tokens));
    o.Set("finishReason", finishName(r.finish));
    o.Set("promptTokens", double(r.promptTokens));
    if (r.queueMs >= 0) o.Set("queueMs", r.queueMs);
    if (r.firstTokenMs >= 0) o.Set("firstTokenMs", r.firstTokenMs);
    if (!r.promptLogits.empty()) o.Set("promptLogits", toFloat32Array(env, r.promptLogits));
    out[uint32_t(i)] = o;
  }
  return out;
}

// ---- generation job ----------------------------------------------------------------

struct GenerationJob {
  explicit GenerationJob(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}

  // Set on the JS thread before submitting; the engine stays alive while a job exists.
  std::shared_ptr<Engine> engine;
  std::shared_ptr<Submission> submission;  // the cancel handle
  Napi::ThreadSafeFunction tsfn;

  // JS thread only.
  Napi::Promise::Deferred deferred;
  Napi::FunctionReference onToken;
  Napi::Reference<Napi::Value> callbackError;  // what onToken threw, if it did

  // Written by the engine thread before it queues the completion.
  std::vector<SequenceResult> results;
  std::optional<CapturedError> error;

  void cancel() {
    if (engine && submission) engine->cancel(submission);
  }

  // Engine thread: a token, in order per sequence.
  void token(int64_t seq, int32_t tok) {
    tsfn.NonBlockingCall([this, seq, tok](Napi::Env env, Napi::Function) { deliverToken(env, seq, tok); });
  }

  // Engine thread, once: the outcome; the job must not be touched after Release.
  void done(std::vector<SequenceResult>&& r, std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (...) {
        error = CapturedError::fromCurrentException();
      }
    } else {
      results = std::move(r);
    }
    tsfn.NonBlockingCall([this](Napi::Env env, Napi::Function) { complete(env); });
    tsfn.Release();
  }

  // JS thread: one token to the onToken callback. A throwing callback stops the
  // generation and becomes the promise's rejection.
  void deliverToken(Napi::Env env, int64_t seq, int32_t token) {
    if (env == nullptr || onToken.IsEmpty() || !callbackError.IsEmpty()) return;
    Napi::HandleScope scope(env);
    try {
      onToken.Call({Napi::Number::New(env, double(seq)), Napi::Number::New(env, token)});
    } catch (const Napi::Error& e) {
      callbackError = Napi::Reference<Napi::Value>::New(e.Value(), 1);
      cancel();
    }
  }

  // JS thread: settles the promise.
  void complete(Napi::Env env) {
    if (env == nullptr) return;
    Napi::HandleScope scope(env);
    try {
      if (!callbackError.IsEmpty()) {
        deferred.Reject(callbackError.Value());
      } else if (error) {
        deferred.Reject(codedError(env, error->code.c_str(), error->message).Value());
      } else {
        deferred.Resolve(resultsToJs(env, results));
      }
    } catch (const Napi::Error& e) {
      deferred.Reject(e.Value());
    } catch (...) {
      deferred.Reject(currentExceptionToJs(env).Value());
    }
  }
};

// ---- workers -----------------------------------------------------------------------

class EncodeWorker : public PromiseWorker {
 public:
  EncodeWorker(Napi::Env env, std::shared_ptr<Engine> engine, std::vector<float> pixels, int64_t tiles, bool vitOnly)
      : PromiseWorker(env), engine_(std::move(engine)), pixels_(std::move(pixels)), tiles_(tiles), vitOnly_(vitOnly) {}

 protected:
  void run() override {
    out_ = vitOnly_ ? engine_->encodeVit(pixels_.data(), tiles_) : engine_->encodeImages(pixels_.data(), tiles_);
  }
  Napi::Value result(Napi::Env env) override { return toFloat32Array(env, out_); }

 private:
  std::shared_ptr<Engine> engine_;
  std::vector<float> pixels_;  // [tiles, 3, S, S]
  int64_t tiles_;
  bool vitOnly_;
  std::vector<float> out_;
};

// Benchmarks only (bench/run.mjs): device time of the encode path, see Engine::timeEncode.
class TimeEncodeWorker : public PromiseWorker {
 public:
  TimeEncodeWorker(Napi::Env env, std::shared_ptr<Engine> engine, std::vector<float> pixels, int64_t tiles, int reps)
      : PromiseWorker(env), engine_(std::move(engine)), pixels_(std::move(pixels)), tiles_(tiles), reps_(reps) {}

 protected:
  void run() override { times_ = engine_->timeEncode(pixels_.data(), tiles_, reps_); }
  Napi::Value result(Napi::Env env) override {
    auto arr = [&](const std::vector<double>& v) {
      Napi::Array a = Napi::Array::New(env, v.size());
      for (size_t i = 0; i < v.size(); ++i) a.Set(uint32_t(i), v[i]);
      return a;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("encodeSeconds", arr(times_.encodeS));
    o.Set("uploadSeconds", arr(times_.uploadS));
    return o;
  }

 private:
  std::shared_ptr<Engine> engine_;
  std::vector<float> pixels_;
  int64_t tiles_;
  int reps_;
  Engine::EncodeTimes times_;
};

// options.onProgress({tensorsDone, tensorsTotal, bytesDone, bytesTotal}) while the
// weights load: the loader (pool thread) posts each step through a ThreadSafeFunction
// (non-blocking) and, once loaded, waits until JS has seen them all, so the promise
// resolves after the last step. After a failure, steps may still arrive after the
// rejection; lib/engine/nativeModel.ts drops those. A throwing callback is ignored
// here (lib/engine/nativeModel.ts catches it first and fails the load itself).
class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, Napi::FunctionReference* ctor, std::string dir, ModelSpec spec, LoadOptions options,
             Napi::Value onProgress)
      : PromiseWorker(env), ctor_(ctor), dir_(std::move(dir)), spec_(std::move(spec)), options_(options) {
    if (onProgress.IsFunction()) {
      progress_ = Napi::ThreadSafeFunction::New(env, onProgress.As<Napi::Function>(), "internvl.loadProgress", 0, 1);
    }
  }
  ~LoadWorker() override {
    if (progress_) progress_.Release();
  }

 protected:
  void run() override {
    EngineOptions eo;
    eo.kvCacheTokens = options_.kvCacheTokens;
    eo.prefillChunkTokens = options_.prefillChunkTokens;
    eo.prefixCache = options_.prefixCache;
    eo.mixedSteps = options_.mixedSteps;
    eo.visionAhead = options_.visionAhead;
    eo.dummyWeights = options_.dummyWeights;
    eo.quantize = options_.quantize;
    if (progress_) {
      eo.loadProgress = [this](const LoadProgress& p) {
        progress_.NonBlockingCall([p](Napi::Env env, Napi::Function fn) {
          if (env == nullptr) return;
          Napi::Object o = Napi::Object::New(env);
          o.Set("tensorsDone", double(p.tensorsDone));
          o.Set("tensorsTotal", double(p.tensorsTotal));
          o.Set("bytesDone", double(p.bytesDone));
          o.Set("bytesTotal", double(p.bytesTotal));
          try {
            fn.Call({o});
          } catch (const Napi::Error&) {
            // see the class comment
          }
        });
      };
    }
    // One backend per logical device of the map (one when there is no map).
    eo.deviceMap = options_.deviceMap;
    validateDeviceMap(eo.deviceMap, spec_.llm.numLayers);
    if (eo.visionAhead) eo.deviceMap = withOwnVisionDevice(eo.deviceMap);
    std::vector<std::unique_ptr<Backend>> backends;
    for (int d = 0; d < eo.deviceMap.numDevices(); ++d) {
#ifdef INTERNVL_WITH_CUDA
      if (options_.backend == "cuda") {
        backends.push_back(cuda::makeCudaBackend(eo.deviceMap.physicalDevice(d)));
        continue;
      }
#endif
      backends.push_back(std::make_unique<cpu::CpuBackend>(options_.threads, options_.plainCpuKernels));
    }
    engine_ = std::make_shared<Engine>(std::move(backends), dir_, spec_, eo);
    if (progress_) {
      // Every step reaches JS before the promise resolves: the TSFN's queue is FIFO, so
      // once this marker has run, all steps have. Bounded, in case the environment is
      // being torn down (queued calls are then dropped).
      auto drained = std::make_shared<std::promise<void>>();
      std::future<void> done = drained->get_future();
      if (progress_.NonBlockingCall([drained](Napi::Env, Napi::Function) { drained->set_value(); }) == napi_ok) {
        done.wait_for(std::chrono::seconds(5));
      }
    }
  }
  Napi::Value result(Napi::Env env) override {
    auto* holder = new std::shared_ptr<Engine>(std::move(engine_));
    Napi::External<std::shared_ptr<Engine>> ext = Napi::External<std::shared_ptr<Engine>>::New(
        env, holder, [](Napi::Env, std::shared_ptr<Engine>* h) { delete h; });
    return ctor_->New({ext});
  }

 private:
  Napi::FunctionReference* ctor_;
  std::string dir_;
  ModelSpec spec_;
  LoadOptions options_;
  Napi::ThreadSafeFunction progress_;  // empty without options.onProgress
  std::shared_ptr<Engine> engine_;
};

// ---- the model object --------------------------------------------------------------

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceMethod<&ModelWrap::Info>("info"),
                        InstanceMethod<&ModelWrap::EncodeImages>("encodeImages"),
                        InstanceMethod<&ModelWrap::EncodeVit>("encodeVit"),
                        InstanceMethod<&ModelWrap::TimeEncode>("timeEncode"),
                        InstanceMethod<&ModelWrap::Generate>("generate"),
                        InstanceMethod<&ModelWrap::Stats>("stats"),
                        InstanceMethod<&ModelWrap::Dispose>("dispose")});
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw codedError(info.Env(), "ERR_INVALID_ARG", "NativeModel objects are made by loadModel()");
    }
    engine_ = *info[0].As<Napi::External<std::shared_ptr<Engine>>>().Data();
  }

  ~ModelWrap() override {
    // Garbage-collected without dispose(): running generations keep their own
    // reference to the engine and finish on their own; the last one out stops the
    // engine thread.
  }

  // The engine of a NativeModel passed to a __testing function (ctor: the class).
  static std::shared_ptr<Engine> engineOf(const Napi::Value& v, Napi::FunctionReference* ctor) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor->Value())) badArg("model", "NativeModel", v);
    return Unwrap(v.As<Napi::Object>())->engine();
  }

 private:
  std::shared_ptr<Engine> engine() const {
    if (!engine_) throw Error(ErrorCode::Disposed, "the model has been disposed");
    return engine_;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      std::shared_ptr<Engine> e = engine();
      const ModelSpec& s = e->spec();
      Napi::Object o = Napi::Object::New(env);
      o.Set("family", llmFamilyName(s.llm.family));
      o.Set("vocabSize", double(e->vocabSize()));
      o.Set("hiddenSize", double(s.llm.hiddenSize));
      o.Set("numImageToken", double(s.numImageToken()));
      o.Set("imageSize", double(s.tileSize));
      o.Set("imageContextTokenId", double(s.imageContextTokenId));
      o.Set("contextLength", double(s.llm.maxPositionEmbeddings));
      o.Set("backend", e->backendName());
      o.Set("backendDetail", e->backendDetail());
      o.Set("kvBlockSize", double(e->kvBlockSize()));
      o.Set("kvBlocks", double(e->kvBlocks()));
      o.Set("vitHiddenSize", double(s.vision.hiddenSize));
      o.Set("vitTokens", double(1 + s.patchGrid() * s.patchGrid()));
      return o;
    });
  }

  Napi::Value encode(const Napi::CallbackInfo& info, bool vitOnly) { return encodeJob(info, vitOnly ? 1 : 0); }

  // mode 0: embeddings, 1: raw ViT output, 2: timing (third argument: repetitions).
  Napi::Value encodeJob(const Napi::CallbackInfo& info, int mode) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      std::shared_ptr<Engine> e = engine();
      Napi::Float32Array px = typedArrayArg<float>(info, 0, "pixelValues", napi_float32_array, "Float32Array");
      double t = numberArg(info, 1, "tiles");
      if (t < 1 || std::floor(t) != t || t > 1e6) badArg("tiles", "positive integer", info[1]);
      const int64_t tiles = int64_t(t), S = e->spec().tileSize;
      if (int64_t(px.ElementLength()) != tiles * 3 * S * S) {
        throw Error(ErrorCode::InvalidArg, "pixelValues has " + std::to_string(px.ElementLength()) + " values but " +
                                               std::to_string(tiles) + " tile(s) of 3×" + std::to_string(S) + "×" +
                                               std::to_string(S) + " need " + std::to_string(tiles * 3 * S * S));
      }
      std::vector<float> pixels(px.Data(), px.Data() + px.ElementLength());
      PromiseWorker* worker;
      if (mode == 2) {
        const double reps = numberArg(info, 2, "reps");
        if (reps < 1 || std::floor(reps) != reps || reps > 1000) badArg("reps", "integer in 1..1000", info[2]);
        worker = new TimeEncodeWorker(env, e, std::move(pixels), tiles, int(reps));
      } else {
        worker = new EncodeWorker(env, e, std::move(pixels), tiles, mode == 1);
      }
      Napi::Promise p = worker->promise();
      worker->Queue();
      return p;
    });
  }

  Napi::Value EncodeImages(const Napi::CallbackInfo& info) { return encode(info, false); }
  Napi::Value EncodeVit(const Napi::CallbackInfo& info) { return encode(info, true); }
  Napi::Value TimeEncode(const Napi::CallbackInfo& info) { return encodeJob(info, 2); }

  Napi::Value Generate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      std::shared_ptr<Engine> e = engine();
      GenerateRequest req = readGenerateRequest(info[0]);
      e->validate(req);  // bad requests throw here, synchronously
      Napi::Value cb = info[1];
      if (!cb.IsUndefined() && !cb.IsNull() && !cb.IsFunction()) badArg("onToken", "function", cb);

      auto job = std::make_shared<GenerationJob>(env);
      job->engine = e;
      const bool hasOnToken = cb.IsFunction();
      if (hasOnToken) job->onToken = Napi::Persistent(cb.As<Napi::Function>());
      // The TSFN's finalizer (JS thread, after the engine's Release and every queued
      // call) owns the job. At environment teardown it can run first: then it cancels
      // the request and waits until the engine thread is done with the job.
      auto* owner = new std::shared_ptr<GenerationJob>(job);
      job->tsfn = Napi::ThreadSafeFunction::New(
          env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "internvl.generate", 0, 1,
          [](Napi::Env, std::shared_ptr<GenerationJob>* o) {
            if ((*o)->submission) {
              (*o)->cancel();
              (*o)->engine->waitRetired((*o)->submission);
            }
            delete o;
          },
          owner);
      GenerationJob* raw = job.get();
      try {
        TokenCallback onTok;
        if (hasOnToken) onTok = [raw](int64_t seq, int32_t tok) { raw->token(seq, tok); };
        job->submission = e->submit(std::move(req), std::move(onTok),
                                    [raw](std::vector<SequenceResult>&& r, std::exception_ptr err) {
                                      raw->done(std::move(r), err);
                                    });
      } catch (...) {
        job->tsfn.Release();  // finalizer frees the job
        throw;
      }

      Napi::Object out = Napi::Object::New(env);
      out.Set("promise", job->deferred.Promise());
      std::weak_ptr<GenerationJob> weak = job;
      out.Set("cancel", Napi::Function::New(
                            env,
                            [weak](const Napi::CallbackInfo&) {
                              if (auto j = weak.lock()) j->cancel();
                            },
                            "cancel"));
      return out;
    });
  }

  // Live scheduler numbers (tests, monitoring).
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const SchedulerStats st = engine()->stats();
      Napi::Object o = Napi::Object::New(env);
      o.Set("kvBlocks", double(st.kvBlocks));
      o.Set("kvFreeBlocks", double(st.kvFreeBlocks));
      o.Set("queuedRequests", double(st.queuedRequests));
      o.Set("runningRequests", double(st.runningRequests));
      o.Set("runningSequences", double(st.runningSequences));
      o.Set("maxBatchSequences", double(st.maxBatchSequences));
      o.Set("maxBatchRequests", double(st.maxBatchRequests));
      o.Set("decodeSteps", double(st.decodeSteps));
      o.Set("prefillSteps", double(st.prefillSteps));
      o.Set("mixedSteps", double(st.mixedSteps));
      o.Set("cachedBlocks", double(st.cachedBlocks));
      o.Set("prefixHitTokens", double(st.prefixHitTokens));
      o.Set("vitTiles", double(st.vitTiles));
      o.Set("visionAheadTiles", double(st.visionAheadTiles));
      o.Set("completedRequests", double(st.completedRequests));
      o.Set("decodeForwardMs", st.decodeForwardMs);
      o.Set("decodeSampleMs", st.decodeSampleMs);
      o.Set("decodeEmitMs", st.decodeEmitMs);
      o.Set("queueWaitMs", st.queueWaitMs);
      o.Set("admittedRequests", double(st.admittedRequests));
      o.Set("firstTokenWaitMs", st.firstTokenWaitMs);
      o.Set("firstTokens", double(st.firstTokens));
      Napi::Array devices = Napi::Array::New(env);
      for (const DeviceMemory& m : engine()->deviceMemory()) {
        Napi::Object d = Napi::Object::New(env);
        d.Set("weightBytes", double(m.weightBytes));
        d.Set("inUseBytes", double(m.inUseBytes));
        d.Set("peakBytes", double(m.peakBytes));
        d.Set("cachedBytes", double(m.cachedBytes));
        devices.Set(devices.Length(), d);
      }
      o.Set("deviceMemory", devices);
      return o;
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      // Every request gets its onDone (Aborted) before the engine thread exits; the
      // promises settle once this returns to the event loop.
      if (engine_) engine_->shutdown();
      engine_.reset();
      return env.Undefined();
    });
  }

  std::shared_ptr<Engine> engine_;
};

// ---- exports -----------------------------------------------------------------------

Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
    std::string dir = stringArg(info, 0, "dir");
    LoadOptions options = readLoadOptions(info[2]);
    ModelSpec spec = readModelSpec(info[1], options.imageContextTokenId);
    Napi::Value onProgress = info[2].As<Napi::Object>().Get("onProgress");
    if (!onProgress.IsUndefined() && !onProgress.IsFunction()) badArg("options.onProgress", "function", onProgress);
    auto* worker = new LoadWorker(env, ctor, std::move(dir), std::move(spec), options, onProgress);
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  });
}

// Test hook: the sampler on a logits vector. Returns the processed scores (the
// probabilities when sampling) and `draws` successive choices from one PRNG stream.
Napi::Value SamplerProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Float32Array logits = typedArrayArg<float>(info, 0, "logits", napi_float32_array, "Float32Array");
    Napi::Int32Array gen = typedArrayArg<int32_t>(info, 1, "generated", napi_int32_array, "Int32Array");
    SamplingParams p = readSampling(info[2], "sampling");
    double draws = numberArg(info, 3, "draws");
    if (draws < 0 || draws > 1e6 || std::floor(draws) != draws) badArg("draws", "integer between 0 and 1000000", info[3]);
    std::vector<float> base(logits.Data(), logits.Data() + logits.ElementLength());
    std::vector<int32_t> generated(gen.Data(), gen.Data() + gen.ElementLength());
    if (base.empty()) throw Error(ErrorCode::InvalidArg, "logits is empty");
    std::vector<float> processed = base;
    processLogits(processed, p, generated);
    Xoshiro256 rng(p.seed);
    std::vector<int32_t> tokens;
    for (int64_t i = 0; i < int64_t(draws); ++i) {
      std::vector<float> s = base;
      tokens.push_back(chooseToken(s, p, generated, rng));
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("scores", toFloat32Array(env, processed));
    o.Set("tokens", toInt32Array(env, tokens));
    return o;
  });
}

// ---- __testing: fault injection and scheduling control for the fault tests ----------------
// Not part of the typed surface (lib/nativeTypes.ts leaves it out); test/helpers/faultHooks.ts
// types it.

Napi::FunctionReference* modelClass(const Napi::CallbackInfo& info) {
  return static_cast<Napi::FunctionReference*>(info.Data());
}

int deviceArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return 0;
  const double d = numberArg(info, i, "device");
  if (d < 0 || d > 64 || std::floor(d) != d) badArg("device", "integer between 0 and 64", info[i]);
  return int(d);
}

FaultInjector& injectorOf(Engine& e, int device) {
  FaultInjector* f = e.faultInjector(device);
  if (!f) throw Error(ErrorCode::InvalidArg, "device " + std::to_string(device) + " of this model has no fault injector");
  return *f;
}

// armFault(model, plan, device = 0): plan as runtime/fault_injection.h ("oom-after=N", ...).
Napi::Value ArmFault(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::shared_ptr<Engine> e = ModelWrap::engineOf(info[0], modelClass(info));
    const FaultPlan plan = parseFaultPlan(stringArg(info, 1, "plan"), "plan");
    const int device = deviceArg(info, 2);
    if (plan.kind == FaultKind::DeviceError && std::string(e->backendName()) != "cuda") {
      throw Error(ErrorCode::InvalidArg, std::string("the ") + e->backendName() +
                                             " backend has no device errors to inject (error-after is CUDA only)");
    }
    injectorOf(*e, device).arm(plan);
    return env.Undefined();
  });
}

// armNextLoad(plan): the next CUDA allocator made (the next load's first device) starts armed
// with the plan; 'none' clears a plan no load has taken yet.
Napi::Value ArmNextLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    setPendingFaultPlan(parseFaultPlan(stringArg(info, 0, "plan"), "plan"));
    return env.Undefined();
  });
}

// faultsFired(model, device = 0): how many armed plans have fired on that device.
Napi::Value FaultsFired(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::shared_ptr<Engine> e = ModelWrap::engineOf(info[0], modelClass(info));
    return Napi::Number::New(env, double(injectorOf(*e, deviceArg(info, 1)).fired()));
  });
}

// releaseCache(model): every device's cached blocks and idle workspaces back to the driver.
Napi::Value ReleaseCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    ModelWrap::engineOf(info[0], modelClass(info))->releaseDeviceCaches();
    return env.Undefined();
  });
}

// matmulShapesPlanned(model, device = 0): matmul shapes that device's backend has planned.
Napi::Value MatmulShapesPlanned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::shared_ptr<Engine> e = ModelWrap::engineOf(info[0], modelClass(info));
    return Napi::Number::New(env, double(e->matmulShapesPlanned(deviceArg(info, 1))));
  });
}

// hold(model, iterations): the engine thread runs at most that many more working loop
// iterations, then waits (-1: no limit). held(model): it is waiting so, with work.
Napi::Value Hold(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::shared_ptr<Engine> e = ModelWrap::engineOf(info[0], modelClass(info));
    const double n = numberArg(info, 1, "iterations");
    if (n < -1 || n > 1e9 || std::floor(n) != n) badArg("iterations", "integer between -1 and 1e9", info[1]);
    e->holdForTesting(int64_t(n));
    return env.Undefined();
  });
}

Napi::Value Held(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    return Napi::Boolean::New(env, ModelWrap::engineOf(info[0], modelClass(info))->heldForTesting());
  });
}

void init(Napi::Env env, Napi::Object exports) {
  auto* ctor = new Napi::FunctionReference(Napi::Persistent(ModelWrap::define(env)));
  env.AddCleanupHook([ctor] { delete ctor; });
  exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel", ctor));
  exports.Set("samplerProbe", Napi::Function::New(env, SamplerProbe, "samplerProbe"));
  Napi::Object testing = Napi::Object::New(env);
  testing.Set("armFault", Napi::Function::New(env, ArmFault, "armFault", ctor));
  testing.Set("armNextLoad", Napi::Function::New(env, ArmNextLoad, "armNextLoad"));
  testing.Set("faultsFired", Napi::Function::New(env, FaultsFired, "faultsFired", ctor));
  testing.Set("releaseCache", Napi::Function::New(env, ReleaseCache, "releaseCache", ctor));
  testing.Set("hold", Napi::Function::New(env, Hold, "hold", ctor));
  testing.Set("matmulShapesPlanned", Napi::Function::New(env, MatmulShapesPlanned, "matmulShapesPlanned", ctor));
  testing.Set("held", Napi::Function::New(env, Held, "held", ctor));
  exports.Set("__testing", testing);
}

}  // namespace
}  // namespace ivl::napi

IVL_REGISTER_EXPORTS(ivl::napi::init);
