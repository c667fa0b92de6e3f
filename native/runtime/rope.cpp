#include "runtime/rope.h"

#include <cmath>

namespace ivl {

RopeCall ropeForCall(const LlmSpec& spec, int64_t seqLen) {
  const int64_t D = spec.headDim, half = D / 2;
  RopeCall call;
  call.invFreq.resize(size_t(half));

  float base = float(spec.ropeTheta);
  if (spec.ropeScaling == RopeScaling::Dynamic && seqLen > spec.maxPositionEmbeddings) {
    // transformers' _compute_dynamic_ntk_parameters; seqLen is a tensor there, so fp32 ops.
    const float factor = float(spec.ropeFactor);
    const float ratio = factor * float(seqLen) / float(spec.maxPositionEmbeddings) - (factor - 1.0f);
    base = base * std::pow(ratio, float(double(D) / double(D - 2)));
  }
  const std::vector<double>* ext = nullptr;
  if (spec.ropeScaling == RopeScaling::Su) {
    ext = seqLen > spec.originalMaxPositionEmbeddings ? &spec.longFactor : &spec.shortFactor;
    call.scale = float(spec.attentionFactor);
  }
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = float(2 * i) / float(D);  // arange(0, D, 2).float() / D
    float denom = std::pow(base, exponent);
    if (ext) denom = float((*ext)[size_t(i)]) * denom;
    call.invFreq[size_t(i)] = 1.0f / denom;
  }
  return call;
}

void ropeRow(const RopeCall& call, int64_t position, float* cos, float* sin) {
  const float p = float(position);
  for (size_t i = 0; i < call.invFreq.size(); ++i) {
    const float angle = p * call.invFreq[i];
    cos[i] = std::cos(angle) * call.scale;
    sin[i] = std::sin(angle) * call.scale;
  }
}

}  // namespace ivl
