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
#include "runtime/device_map.h"
#include "runtime/kv_cache.h"
#include "runtime/model_spec.h"
#include "runtime/weights.h"

namespace ivl {

class Decoder {
 public:
  // Layer i runs on backends[map.layer(i)], the embeddings on backends[map.embed], the final
  // norm and head on backends[map.head]; x moves between devices where the map changes.
  Decoder(const std::vector<Backend*>& backends, const DeviceMap& map, const ModelSpec& spec,
          const LlmWeights& weights, KvCache& kv);

  // Token embeddings: ids [T] -> [T, H] (on the embedding device).
  Tensor embed(const std::vector<int32_t>& ids);

  // Runs every layer over x [T, H] (consumed; on the embedding device), writing K/V at
  // batch.slots, and returns logits [rows.size(), V] (on the head device) for the listed rows.
  // cos/sin: host [T, D/2] each. Checks `cancel` between layers.
  Tensor forward(Tensor x, const PagedBatch& batch, const std::vector<float>& cos, const std::vector<float>& sin,
                 const std::vector<int64_t>& logitRows, const std::atomic<bool>* cancel);

 private:
  struct Scratch;
  Backend& device(int d) { return *backends_.at(size_t(d)); }
  Tensor moveTo(Tensor x, int from, int to);
  Scratch scratch(Backend& be, int64_t T, const std::vector<float>& cos, const std::vector<float>& sin,
                  bool stackedQkv, bool stackedGateUp);

  const std::vector<Backend*>& backends_;
  const DeviceMap& map_;
  const ModelSpec& spec_;
  const LlmWeights& w_;
  KvCache& kv_;
};

}  // namespace ivl
