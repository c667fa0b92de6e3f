// Rotary position embedding tables, computed on the host in fp32 the way
// transformers does, for one forward call of one sequence:
//   inv_freq[i] = 1 / (ext[i] · base^(2i/D))          i < D/2, all fp32 ops
//   cos[p, i] = cos(p · inv_freq[i]) · attention_scale, sin likewise
// What changes per call (transformers' dynamic_rope_update, keyed on the largest
// position in the call, seqLen = max position + 1):
//   none     base = rope_theta, ext = 1, scale = 1
//   dynamic  (InternLM2 dynamic NTK) when seqLen > max_position_embeddings:
//            base = θ · ((factor · seqLen / maxPos) − (factor − 1))^(D / (D − 2))
//   su       (Phi3 su/longrope) ext = short_factor if seqLen ≤ original_max_position_embeddings,
//            else long_factor; scale = attention factor
// K is cached after rotation, so a sequence that crosses a threshold during decode
// keeps its earlier keys rotated the old way, exactly like the reference.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/model_spec.h"

namespace ivl {

struct RopeCall {
  std::vector<float> invFreq;  // [D/2]
  float scale = 1.0f;          // multiplies cos and sin
};

// The frequencies for a forward call whose largest position + 1 is seqLen.
RopeCall ropeForCall(const LlmSpec& spec, int64_t seqLen);

// cos/sin rows for one position: cos[D/2], sin[D/2].
void ropeRow(const RopeCall& call, int64_t position, float* cos, float* sin);

}  // namespace ivl
