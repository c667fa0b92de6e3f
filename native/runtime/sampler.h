// Choosing the next token from fp32 logits, the way transformers' generate() does
// for InternVL's chat():
//   1. repetition penalty (RepetitionPenaltyLogitsProcessor, when penalty != 1):
//      for each distinct id already generated, s = s < 0 ? s·penalty : s / penalty.
//      InternVL calls generate() with inputs_embeds only, so HF's input_ids (what the
//      processor penalizes) hold the generated tokens, not the prompt; so here too.
//   greedy: argmax (first index of the maximum).
//   sampling:
//   2. temperature (when != 1): s /= T
//   3. top-k (when k > 0): keep scores >= the k-th largest (ties at the boundary kept)
//   4. top-p (when p < 1): sort ascending, cumulative softmax (fp32); drop the tokens
//      whose cumulative probability <= 1 − p, always keeping the largest
//   5. softmax over the kept tokens (max-subtracted, f32 exps, double sum)
//   6. draw u ∈ [0, 1) from the sequence's PRNG; the token is the first id (in id
//      order) whose cumulative probability exceeds u.
// The implementation gives these results bit for bit without sorting the vocabulary by a
// comparison sort: see sampler.cpp (test/engine/samplerExact.cpp checks it against the
// literal algorithm). Buffers are kept per thread, so rows may be sampled on several threads.
// PRNG: xoshiro256** (Blackman & Vigna) seeded by four outputs of splitmix64(seed);
// u = (next() >> 11) · 2⁻⁵³. Each sequence has its own generator seeded with the
// request's seed, so its tokens do not depend on the other sequences in the batch.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/greedy.h"

namespace ivl {

struct SamplingParams {
  bool doSample = false;
  double temperature = 1.0;
  int64_t topK = 0;  // 0: off
  double topP = 1.0;
  double repetitionPenalty = 1.0;
  uint64_t seed = 0;
};

class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1), 53 random bits

 private:
  uint64_t s_[4];
};

// Steps 1 (always) and 2-5 (doSample) in place on scores[V]; after it, with doSample
// the scores hold the probabilities (0 for dropped tokens). Returns nothing.
void processLogits(std::vector<float>& scores, const SamplingParams& p, const std::vector<int32_t>& generated);

// The whole choice: processLogits, then argmax or a draw from rng.
int32_t chooseToken(std::vector<float>& scores, const SamplingParams& p, const std::vector<int32_t>& generated,
                    Xoshiro256& rng);

}  // namespace ivl
