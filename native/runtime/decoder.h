// The causal decoder (Llama / InternLM2 / Qwen2 / Phi3: one graph, weights
// normalized by weights.cpp), one forward step over a ragged batch:
//
//   x [T, H]  (token embeddings, image rows already scattered in)
//   per layer:
//     a = rmsnorm(x)                         [T, H]
//     q = a·Wqᵀ(+bq) [T, Hq·D]   k, v = a·W{k,v}ᵀ(+b) [T, KV·D]
//     rope(q), rope(k)  with per-token cos/sin [T, D/2]
//     write k, v into the pages; o = causal paged attention (GQA)   [T, Hq·D]
//     x += o·Woᵀ(+bo)
//     x += down(silu(a'·Wgᵀ) ⊙ a'·Wuᵀ),  a' = rmsnorm(x)
//   logits for selected rows: head(rmsnorm(x[rows]))              [R, V]
#pragma once
#include <atomic>

#include "runtime/backend.h"
#include "runtime/kv_cache.h"
#include "runtime/model_spec.h"
#include "runtime/weights.h"

namespace ivl {

class Decoder {
 public:
  Decoder(Backend& backend, const ModelSpec& spec, const LlmWeights& weights, KvCache& kv)
      : be_(backend), spec_(spec), w_(weights), kv_(kv) {}

  // Token embeddings: ids [T] -> [T, H].
  Tensor embed(const std::vector<int32_t>& ids);

  // Runs every layer over x [T, H] (consumed), writing K/V at batch.slots, and returns
  // logits [rows.size(), V] for the listed rows of the step.
  // cos/sin: host [T, D/2] each. Checks `cancel` between layers.
  Tensor forward(Tensor x, const PagedBatch& batch, const std::vector<float>& cos, const std::vector<float>& sin,
                 const std::vector<int64_t>& logitRows, const std::atomic<bool>* cancel);

 private:
  Tensor act(const Shape& s) { return be_.alloc(be_.activationDType(), s); }

  Backend& be_;
  const ModelSpec& spec_;
  const LlmWeights& w_;
  KvCache& kv_;
};

}  // namespace ivl
