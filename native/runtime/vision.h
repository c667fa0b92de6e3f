// InternViT + pixel shuffle + mlp1, written once against the Backend interface.
//
//   pixels [T, 3, S, S]
//   -> patchify [T·G², 3·p·p] -> patch matmul [T·G², C] -> + CLS, + pos   x [T, 1+G², C]
//   -> layers (pre-norm, layer scale):
//        x += ls1 ⊙ proj(attn(norm1(x)))       attn: q,k,v = x·W{q,k,v}ᵀ (+b); [qk-norm over C];
//        x += ls2 ⊙ fc2(gelu(fc1(norm2(x))))         softmax((q·D^-½)·kᵀ)·v per tile and head
//   -> no final norm                                                   vit [T, 1+G², C]
//   -> drop CLS, pixel shuffle v2                                      [T, (G/s)², s²C]
//   -> mlp1: LayerNorm(eps 1e-5) -> Linear -> GELU -> Linear           [T, (G/s)², H]
// Tiles run one at a time (rows are independent, memory stays bounded).
#pragma once
#include <atomic>

#include "runtime/backend.h"
#include "runtime/model_spec.h"
#include "runtime/weights.h"

namespace ivl {

class VisionEncoder {
 public:
  VisionEncoder(Backend& backend, const ModelSpec& spec, const VisionWeights& weights)
      : be_(backend), spec_(spec), w_(weights) {}

  // ViT output of one tile: pixels [1, 3, S, S] -> [1, 1+G², C].
  Tensor vit(const Tensor& pixels, const std::atomic<bool>* cancel = nullptr);
  // Projected image embeddings of one tile: ViT output [1, 1+G², C] -> [numImageToken, H].
  Tensor project(const Tensor& vitOut);
  // Host pixels of `tiles` tiles [tiles, 3, S, S] -> embeddings [tiles·numImageToken, H].
  Tensor encode(const float* pixels, int64_t tiles, const std::atomic<bool>* cancel = nullptr);

 private:
  Tensor act(const Shape& s) { return be_.alloc(be_.activationDType(), s); }

  Backend& be_;
  const ModelSpec& spec_;
  const VisionWeights& w_;
};

// Throws ivl::Error(Aborted) when the flag is set: long loops call it between steps.
inline void checkCancel(const std::atomic<bool>* cancel) {
  if (cancel && cancel->load(std::memory_order_relaxed)) throw Error(ErrorCode::Aborted, "cancelled");
}

}  // namespace ivl
