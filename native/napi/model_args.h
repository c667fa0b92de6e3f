// JS objects -> engine structs for the model bindings (JS thread only). Every
// reader names the field it wanted ("spec.llm.numHeads") in its ERR_INVALID_ARG.
#pragma once
#include <napi.h>

#include <string>

#include "runtime/device_map.h"
#include "runtime/engine.h"
#include "runtime/model_spec.h"

namespace ivl::napi {

// NativeModelSpec (lib/nativeTypes.ts) -> ModelSpec; imageContextTokenId comes from the options.
ModelSpec readModelSpec(const Napi::Value& v, int64_t imageContextTokenId);

struct LoadOptions {
  std::string backend = "cpu";
  int threads = 0;  // 0: all cores
  int64_t kvCacheTokens = 0;
  int64_t prefillChunkTokens = EngineOptions::kDefaultPrefillChunkTokens;
  bool prefixCache = true;
  bool mixedSteps = false;
  bool visionAhead = false;  // the vision on a logical device of its own, its own thread
  int64_t imageContextTokenId = -1;
  bool plainCpuKernels = false;  // cpuKernels: 'plain'
  bool dummyWeights = false;     // random weights of the config's shapes, no checkpoint files
  QuantizeOptions quantize;      // dtype 'int8': int8Scheme + quantize.{vision,projector,head}
  DeviceMap deviceMap;           // resolved by lib/deviceMap.ts; empty: one device
};
LoadOptions readLoadOptions(const Napi::Value& v);

// NativeGenerateRequest -> GenerateRequest (copies the typed arrays).
GenerateRequest readGenerateRequest(const Napi::Value& v);

// SamplingParams from a NativeSampling object; name is used in messages.
SamplingParams readSampling(const Napi::Value& v, const std::string& name);

}  // namespace ivl::napi
