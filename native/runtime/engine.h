// The engine: one loaded model (weights on a backend, its KV cache) and the jobs it
// runs: ViT / image encoding and batched generation. Backend-neutral; the caller
// picks the backend. One job at a time (a mutex); a generation waiting for the
// engine gives up as soon as it is cancelled.
//
// Generation (generate):
//   1. validate the request; reserve every sequence's KV pages up front
//      (prompt + maxNewTokens − 1 tokens), or fail with OutOfMemory and the numbers;
//   2. prefill each sequence on its own (positions 0..L−1): token embeddings, its
//      images encoded and scattered over its <IMG_CONTEXT> rows in order, one
//      forward call, logits of the last position -> first token;
//   3. decode all unfinished sequences together, one token each per step
//      (each at its own position), until eos / maxNewTokens / cancel.
// A sequence's tokens do not depend on the rest of the batch: every row is computed
// the same way whatever the batch, RoPE tables are per sequence, and each sequence
// samples from its own PRNG stream.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/checkpoint.h"
#include "runtime/kv_cache.h"
#include "runtime/model_spec.h"
#include "runtime/sampler.h"
#include "runtime/weights.h"

namespace ivl {

struct EngineOptions {
  int64_t kvCacheTokens = 0;  // 0: kDefaultKvCacheTokens
  int64_t kvBlockSize = 16;   // tokens per page
  bool dummyWeights = false;  // random weights of the config's shapes instead of reading `dir`
  QuantizeOptions quantize;   // int8 (W8A16) weights quantized at load; none by default
  static constexpr int64_t kDefaultKvCacheTokens = 8192;
};

struct SequenceInput {
  std::vector<int32_t> inputIds;  // [L] prompt, <IMG_CONTEXT> runs already expanded
  std::vector<float> pixels;      // [tiles, 3, S, S] this sequence's tiles in prompt order
  int64_t tiles = 0;
};

struct GenerateRequest {
  std::vector<SequenceInput> sequences;
  int64_t maxNewTokens = 0;
  std::vector<int32_t> eosTokenIds;
  SamplingParams sampling;
  bool returnPromptLogits = false;
};

enum class FinishReason { Eos, Length, Aborted };

struct SequenceResult {
  std::vector<int32_t> tokens;  // generated ids (an eos token included)
  FinishReason finish = FinishReason::Length;
  int64_t promptTokens = 0;
  std::vector<float> promptLogits;  // [V] last prompt position (when asked)
};

// Called after each chosen token, on the generating thread.
using TokenCallback = std::function<void(int64_t sequence, int32_t token)>;

class Engine {
 public:
  // Opens and checks the checkpoint against spec, loads the weights onto backend and
  // allocates the KV cache. Throws ivl::Error (Config / Checkpoint / OutOfMemory).
  Engine(std::unique_ptr<Backend> backend, const std::string& dir, const ModelSpec& spec,
         const EngineOptions& options);
  ~Engine();

  const ModelSpec& spec() const { return spec_; }
  const char* backendName() const { return backend_->name(); }
  std::string backendDetail() const { return backend_->describe(); }
  int64_t vocabSize() const { return weights_.llm.vocab; }
  int64_t kvBlockSize() const { return kv_->blockSize(); }
  int64_t kvBlocks() const { return kv_->numBlocks(); }

  // pixels [tiles, 3, S, S] -> raw ViT output [tiles, 1+G², C].
  std::vector<float> encodeVit(const float* pixels, int64_t tiles);
  // pixels [tiles, 3, S, S] -> projected image embeddings [tiles, numImageToken, H].
  std::vector<float> encodeImages(const float* pixels, int64_t tiles);

  // Runs a whole batch (see the header comment). Returns one result per sequence;
  // cancellation makes unfinished sequences finish with Aborted (not an exception).
  std::vector<SequenceResult> generate(const GenerateRequest& req, const TokenCallback& onToken,
                                       const std::atomic<bool>& cancel);

  // The request checks generate() starts with (ivl::Error(InvalidArg) naming the
  // sequence and field); cheap, so bindings call it up front for a synchronous error.
  void validate(const GenerateRequest& req) const;

 private:
  std::vector<SequenceResult> runGenerate(const GenerateRequest& req, const TokenCallback& onToken,
                                          const std::atomic<bool>& cancel);

  ModelSpec spec_;
  std::unique_ptr<Backend> backend_;
  ModelWeights weights_;
  std::unique_ptr<KvCache> kv_;
  std::timed_mutex mutex_;  // one job at a time
};

}  // namespace ivl
