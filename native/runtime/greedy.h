// The greedy choice over fp32 scores, shared by the host sampler (runtime/sampler.h) and
// Backend::greedyTokens' host default; a device implementation must match it bit for bit.
// Header-only so every program that links a Backend links it (cuda/dev harnesses too).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace ivl {

// Repetition penalty (transformers' RepetitionPenaltyLogitsProcessor) on scores[V] in place:
// for each distinct id of generated in [0, V), s = s < 0 ? s·p : s / p with p = float(penalty).
// Nothing when penalty == 1.
inline void applyRepetitionPenalty(float* scores, int64_t V, double penalty, const std::vector<int32_t>& generated) {
  if (penalty == 1.0 || generated.empty()) return;
  const float pen = float(penalty);
  std::vector<int32_t> ids(generated);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (int32_t id : ids) {
    if (id < 0 || id >= V) continue;
    float& x = scores[size_t(id)];
    x = x < 0 ? x * pen : x / pen;
  }
}

// The first index of the maximum, as std::max_element gives it (a NaN is never the maximum
// unless it is element 0).
inline int32_t argmaxFirst(const float* scores, int64_t V) { return int32_t(std::max_element(scores, scores + V) - scores); }

}  // namespace ivl
