#include "napi/model_args.h"

#include <cmath>
#include <cstdint>

#include "napi/args.h"

namespace ivl::napi {

namespace {

Napi::Object objectAt(const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray() || v.IsFunction()) badArg(name, "object", v);
  return v.As<Napi::Object>();
}

double numberAt(const Napi::Object& o, const std::string& key, const std::string& name) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue())) badArg(name, "finite number", v);
  return v.As<Napi::Number>().DoubleValue();
}

int64_t intAt(const Napi::Object& o, const std::string& key, const std::string& name, int64_t lo = INT64_MIN) {
  Napi::Value v = o.Get(key);
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9007199254740991.0 || int64_t(d) < lo) {
    badArg(name, lo == 0 ? "non-negative integer" : lo == 1 ? "positive integer" : "integer", v);
  }
  return int64_t(d);
}

bool boolAt(const Napi::Object& o, const std::string& key, const std::string& name) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) badArg(name, "boolean", v);
  return v.As<Napi::Boolean>().Value();
}

std::string stringAt(const Napi::Object& o, const std::string& key, const std::string& name) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) badArg(name, "string", v);
  return v.As<Napi::String>().Utf8Value();
}

std::vector<double> numbersAt(const Napi::Object& o, const std::string& key, const std::string& name) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) badArg(name, "array of numbers", v);
  Napi::Array a = v.As<Napi::Array>();
  std::vector<double> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) badArg(name + "[" + std::to_string(i) + "]", "number", e);
    out.push_back(e.As<Napi::Number>().DoubleValue());
  }
  return out;
}

}  // namespace

ModelSpec readModelSpec(const Napi::Value& value, int64_t imageContextTokenId) {
  ModelSpec s;
  Napi::Object o = objectAt(value, "spec");
  s.tileSize = intAt(o, "tileSize", "spec.tileSize", 1);
  s.downsampleRatio = numberAt(o, "downsampleRatio", "spec.downsampleRatio");
  s.selectLayer = intAt(o, "selectLayer", "spec.selectLayer");
  s.imageContextTokenId = imageContextTokenId;

  Napi::Object v = objectAt(o.Get("vision"), "spec.vision");
  VisionSpec& vs = s.vision;
  vs.hiddenSize = intAt(v, "hiddenSize", "spec.vision.hiddenSize", 1);
  vs.intermediateSize = intAt(v, "intermediateSize", "spec.vision.intermediateSize", 1);
  vs.numHeads = intAt(v, "numHeads", "spec.vision.numHeads", 1);
  vs.numLayers = intAt(v, "numLayers", "spec.vision.numLayers", 1);
  vs.imageSize = intAt(v, "imageSize", "spec.vision.imageSize", 1);
  vs.patchSize = intAt(v, "patchSize", "spec.vision.patchSize", 1);
  const std::string norm = stringAt(v, "normType", "spec.vision.normType");
  if (norm == "layer_norm") vs.norm = VitNorm::LayerNorm;
  else if (norm == "rms_norm") vs.norm = VitNorm::RmsNorm;
  else badArg("spec.vision.normType", "'layer_norm' or 'rms_norm'", v.Get("normType"));
  vs.eps = numberAt(v, "eps", "spec.vision.eps");
  vs.qkvBias = boolAt(v, "qkvBias", "spec.vision.qkvBias");
  vs.qkNorm = boolAt(v, "qkNorm", "spec.vision.qkNorm");

  Napi::Object l = objectAt(o.Get("llm"), "spec.llm");
  LlmSpec& ls = s.llm;
  const std::string family = stringAt(l, "family", "spec.llm.family");
  if (family == "llama") ls.family = LlmFamily::Llama;
  else if (family == "internlm2") ls.family = LlmFamily::InternLM2;
  else if (family == "qwen2") ls.family = LlmFamily::Qwen2;
  else if (family == "phi3") ls.family = LlmFamily::Phi3;
  else badArg("spec.llm.family", "'llama', 'internlm2', 'qwen2' or 'phi3'", l.Get("family"));
  ls.hiddenSize = intAt(l, "hiddenSize", "spec.llm.hiddenSize", 1);
  ls.intermediateSize = intAt(l, "intermediateSize", "spec.llm.intermediateSize", 1);
  ls.numLayers = intAt(l, "numLayers", "spec.llm.numLayers", 1);
  ls.numHeads = intAt(l, "numHeads", "spec.llm.numHeads", 1);
  ls.numKvHeads = intAt(l, "numKvHeads", "spec.llm.numKvHeads", 1);
  ls.headDim = intAt(l, "headDim", "spec.llm.headDim", 1);
  ls.vocabSize = intAt(l, "vocabSize", "spec.llm.vocabSize", 1);
  ls.rmsEps = numberAt(l, "rmsEps", "spec.llm.rmsEps");
  ls.ropeTheta = numberAt(l, "ropeTheta", "spec.llm.ropeTheta");
  ls.maxPositionEmbeddings = intAt(l, "maxPositionEmbeddings", "spec.llm.maxPositionEmbeddings", 1);
  ls.tieWordEmbeddings = boolAt(l, "tieWordEmbeddings", "spec.llm.tieWordEmbeddings");
  ls.qkvBias = boolAt(l, "qkvBias", "spec.llm.qkvBias");
  ls.oBias = boolAt(l, "oBias", "spec.llm.oBias");

  Napi::Object r = objectAt(l.Get("ropeScaling"), "spec.llm.ropeScaling");
  const std::string type = stringAt(r, "type", "spec.llm.ropeScaling.type");
  if (type == "none") {
    ls.ropeScaling = RopeScaling::None;
  } else if (type == "dynamic") {
    ls.ropeScaling = RopeScaling::Dynamic;
    ls.ropeFactor = numberAt(r, "factor", "spec.llm.ropeScaling.factor");
  } else if (type == "su") {
    ls.ropeScaling = RopeScaling::Su;
    ls.originalMaxPositionEmbeddings =
        intAt(r, "originalMaxPositionEmbeddings", "spec.llm.ropeScaling.originalMaxPositionEmbeddings", 1);
    ls.shortFactor = numbersAt(r, "shortFactor", "spec.llm.ropeScaling.shortFactor");
    ls.longFactor = numbersAt(r, "longFactor", "spec.llm.ropeScaling.longFactor");
    ls.attentionFactor = numberAt(r, "attentionFactor", "spec.llm.ropeScaling.attentionFactor");
  } else {
    badArg("spec.llm.ropeScaling.type", "'none', 'dynamic' or 'su'", r.Get("type"));
  }
  return s;
}

// A resolved device map (lib/deviceMap.ts resolves 'auto' / 'card'):
// { layers: number[], vision?, embed?, head?: number, physical?: number[] } (integers >= 0).
static std::vector<int> intList(const Napi::Object& o, const std::string& key, const std::string& name) {
  const Napi::Value v = o.Get(key);
  if (!v.IsArray()) badArg(name, "an array of device indices", v);
  const Napi::Array a = v.As<Napi::Array>();
  std::vector<int> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const Napi::Value e = a.Get(i);
    if (!e.IsNumber() || e.As<Napi::Number>().DoubleValue() != double(int(e.As<Napi::Number>().DoubleValue())) ||
        e.As<Napi::Number>().Int32Value() < 0) {
      badArg(name + "[" + std::to_string(i) + "]", "an integer >= 0", e);
    }
    out.push_back(e.As<Napi::Number>().Int32Value());
  }
  return out;
}

static DeviceMap readDeviceMap(const Napi::Value& value) {
  Napi::Object o = objectAt(value, "options.deviceMap");
  DeviceMap m;
  m.layers = intList(o, "layers", "options.deviceMap.layers");
  if (!o.Get("vision").IsUndefined()) m.vision = int(intAt(o, "vision", "options.deviceMap.vision", 0));
  if (!o.Get("embed").IsUndefined()) m.embed = int(intAt(o, "embed", "options.deviceMap.embed", 0));
  if (!o.Get("head").IsUndefined()) m.head = int(intAt(o, "head", "options.deviceMap.head", 0));
  if (!o.Get("physical").IsUndefined()) m.physical = intList(o, "physical", "options.deviceMap.physical");
  return m;
}

// dtype 'bf16' (default) | 'int8'; int8Scheme 'per-channel' (default) | 'per-group-128';
// quantize { vision?, projector?, head? } (booleans, default false). Decoder linears are
// always quantized with 'int8'; int8Scheme / quantize without dtype 'int8' are refused.
static void readQuantizeOptions(const Napi::Object& o, LoadOptions& opt) {
  std::string dtype = "bf16";
  if (!o.Get("dtype").IsUndefined()) {
    dtype = stringAt(o, "dtype", "options.dtype");
    if (dtype != "bf16" && dtype != "int8") badArg("options.dtype", "'bf16' or 'int8'", o.Get("dtype"));
  }
  WeightUse scheme = WeightUse::Int8PerChannel;
  if (!o.Get("int8Scheme").IsUndefined()) {
    const std::string s = stringAt(o, "int8Scheme", "options.int8Scheme");
    if (s == "per-channel") scheme = WeightUse::Int8PerChannel;
    else if (s == "per-group-128") scheme = WeightUse::Int8PerGroup128;
    else badArg("options.int8Scheme", "'per-channel' or 'per-group-128'", o.Get("int8Scheme"));
  }
  QuantizeOptions q;
  if (!o.Get("quantize").IsUndefined()) {
    Napi::Object qo = objectAt(o.Get("quantize"), "options.quantize");
    if (!qo.Get("vision").IsUndefined()) q.vision = boolAt(qo, "vision", "options.quantize.vision");
    if (!qo.Get("projector").IsUndefined()) q.projector = boolAt(qo, "projector", "options.quantize.projector");
    if (!qo.Get("head").IsUndefined()) q.head = boolAt(qo, "head", "options.quantize.head");
  }
  if (dtype != "int8") {
    if (!o.Get("int8Scheme").IsUndefined() || q.vision || q.projector || q.head) {
      throw Error(ErrorCode::InvalidArg, "options.int8Scheme and options.quantize need options.dtype 'int8'");
    }
    return;
  }
  q.scheme = scheme;
  opt.quantize = q;
}

LoadOptions readLoadOptions(const Napi::Value& value) {
  LoadOptions opt;
  Napi::Object o = objectAt(value, "options");
  opt.backend = stringAt(o, "backend", "options.backend");
#ifdef INTERNVL_WITH_CUDA
  if (opt.backend != "cpu" && opt.backend != "cuda") {
    throw Error(ErrorCode::InvalidArg,
                "Expected 'cpu' or 'cuda' for options.backend but received '" + opt.backend + "'");
  }
#else
  if (opt.backend != "cpu") {
    throw Error(ErrorCode::InvalidArg, "Expected 'cpu' for options.backend but received '" + opt.backend +
                                           "': this build of the addon has no CUDA backend");
  }
#endif
  if (!o.Get("threads").IsUndefined()) opt.threads = int(intAt(o, "threads", "options.threads", 0));
  if (!o.Get("kvCacheTokens").IsUndefined()) opt.kvCacheTokens = intAt(o, "kvCacheTokens", "options.kvCacheTokens", 1);
  if (!o.Get("prefixCache").IsUndefined()) {
    if (!o.Get("prefixCache").IsBoolean()) badArg("options.prefixCache", "boolean", o.Get("prefixCache"));
    opt.prefixCache = o.Get("prefixCache").As<Napi::Boolean>().Value();
  }
  if (!o.Get("mixedSteps").IsUndefined()) {
    if (!o.Get("mixedSteps").IsBoolean()) badArg("options.mixedSteps", "boolean", o.Get("mixedSteps"));
    opt.mixedSteps = o.Get("mixedSteps").As<Napi::Boolean>().Value();
  }
  if (!o.Get("visionAhead").IsUndefined()) {
    if (!o.Get("visionAhead").IsBoolean()) badArg("options.visionAhead", "boolean", o.Get("visionAhead"));
    opt.visionAhead = o.Get("visionAhead").As<Napi::Boolean>().Value();
  }
  if (!o.Get("prefillChunkTokens").IsUndefined()) {
    opt.prefillChunkTokens = intAt(o, "prefillChunkTokens", "options.prefillChunkTokens", 1);
  }
  opt.imageContextTokenId = intAt(o, "imageContextTokenId", "options.imageContextTokenId", 0);
  if (!o.Get("dummyWeights").IsUndefined()) {
    if (!o.Get("dummyWeights").IsBoolean()) badArg("options.dummyWeights", "boolean", o.Get("dummyWeights"));
    opt.dummyWeights = o.Get("dummyWeights").As<Napi::Boolean>().Value();
  }
  if (!o.Get("cpuKernels").IsUndefined()) {
    const std::string k = stringAt(o, "cpuKernels", "options.cpuKernels");
    if (k != "auto" && k != "plain") badArg("options.cpuKernels", "'auto' or 'plain'", o.Get("cpuKernels"));
    opt.plainCpuKernels = k == "plain";
  }
  readQuantizeOptions(o, opt);
  if (!o.Get("deviceMap").IsUndefined()) opt.deviceMap = readDeviceMap(o.Get("deviceMap"));
  return opt;
}

SamplingParams readSampling(const Napi::Value& value, const std::string& name) {
  Napi::Object o = objectAt(value, name);
  SamplingParams p;
  p.doSample = boolAt(o, "doSample", name + ".doSample");
  p.temperature = numberAt(o, "temperature", name + ".temperature");
  p.topK = intAt(o, "topK", name + ".topK", 0);
  p.topP = numberAt(o, "topP", name + ".topP");
  p.repetitionPenalty = numberAt(o, "repetitionPenalty", name + ".repetitionPenalty");
  p.seed = uint64_t(intAt(o, "seed", name + ".seed", 0));
  return p;
}

GenerateRequest readGenerateRequest(const Napi::Value& value) {
  GenerateRequest req;
  Napi::Object o = objectAt(value, "request");
  Napi::Value seqs = o.Get("sequences");
  if (!seqs.IsArray()) badArg("request.sequences", "array", seqs);
  Napi::Array arr = seqs.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string name = "request.sequences[" + std::to_string(i) + "]";
    Napi::Object so = objectAt(arr.Get(i), name);
    SequenceInput in;
    Napi::Value ids = so.Get("inputIds");
    if (!ids.IsTypedArray() || ids.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      badArg(name + ".inputIds", "Int32Array", ids);
    }
    Napi::Int32Array ia = ids.As<Napi::Int32Array>();
    in.inputIds.assign(ia.Data(), ia.Data() + ia.ElementLength());
    Napi::Value px = so.Get("pixelValues");
    if (!px.IsUndefined()) {
      if (!px.IsTypedArray() || px.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        badArg(name + ".pixelValues", "Float32Array", px);
      }
      Napi::Float32Array fa = px.As<Napi::Float32Array>();
      in.pixels.assign(fa.Data(), fa.Data() + fa.ElementLength());
      in.tiles = intAt(so, "tiles", name + ".tiles", 0);
    } else if (!so.Get("tiles").IsUndefined()) {
      in.tiles = intAt(so, "tiles", name + ".tiles", 0);
    }
    req.sequences.push_back(std::move(in));
  }
  req.maxNewTokens = intAt(o, "maxNewTokens", "request.maxNewTokens", 0);
  Napi::Value eos = o.Get("eosTokenIds");
  if (!eos.IsArray()) badArg("request.eosTokenIds", "array of token ids", eos);
  Napi::Array ea = eos.As<Napi::Array>();
  for (uint32_t i = 0; i < ea.Length(); ++i) {
    Napi::Value e = ea.Get(i);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || std::floor(d) != d || d < 0 || d > 2147483647.0) {
      badArg("request.eosTokenIds[" + std::to_string(i) + "]", "token id", e);
    }
    req.eosTokenIds.push_back(int32_t(d));
  }
  req.sampling = readSampling(o.Get("sampling"), "request.sampling");
  Napi::Value rl = o.Get("returnPromptLogits");
  if (!rl.IsUndefined()) req.returnPromptLogits = boolAt(o, "returnPromptLogits", "request.returnPromptLogits");
  return req;
}

}  // namespace ivl::napi
