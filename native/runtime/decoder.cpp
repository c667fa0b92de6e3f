#include "runtime/decoder.h"

#include <cmath>

#include "runtime/vision.h"  // checkCancel

namespace ivl {

Tensor Decoder::embed(const std::vector<int32_t>& ids) {
  Tensor x = act({int64_t(ids.size()), spec_.llm.hiddenSize});  // [T, H]
  be_.embedding(x, w_.embed, ids);
  return x;
}

Tensor Decoder::forward(Tensor x, const PagedBatch& batch, const std::vector<float>& cosHost,
                        const std::vector<float>& sinHost, const std::vector<int64_t>& logitRows,
                        const std::atomic<bool>* cancel) {
  const LlmSpec& l = spec_.llm;
  const int64_t T = batch.numTokens(), H = l.hiddenSize, F = l.intermediateSize, D = l.headDim;
  const int64_t Hq = l.numHeads, KV = l.numKvHeads;
  require(x.rows() == T && x.cols() == H, ErrorCode::Internal, "decoder: input rows do not match the batch");

  Tensor cos = be_.uploadF32(cosHost.data(), {T, D / 2});  // [T, D/2]
  Tensor sin = be_.uploadF32(sinHost.data(), {T, D / 2});  // [T, D/2]
  Tensor a = act({T, H});                                  // normed input
  Tensor q = act({T, Hq * D});
  Tensor o = act({T, Hq * D});  // attention output
  Tensor r = act({T, H});       // projection / MLP output
  Tensor g = act({T, F});       // gate, then silu(gate) ⊙ up
  // Stacked weights (weights.h) run as one matmul each: one pass over the weights instead of
  // three (q/k/v) or two (gate/up), which is what a memory-bound decode step costs.
  const bool stackedQkv = !w_.layers.empty() && w_.layers[0].wqkv.defined();
  const bool stackedGateUp = !w_.layers.empty() && w_.layers[0].gateUp.defined();
  Tensor qkv = stackedQkv ? act({T, (Hq + 2 * KV) * D}) : Tensor();
  Tensor k = stackedQkv ? Tensor() : act({T, KV * D});
  Tensor v = stackedQkv ? Tensor() : act({T, KV * D});
  Tensor gu = stackedGateUp ? act({T, 2 * F}) : Tensor();  // [gate | up]
  Tensor u = stackedGateUp ? Tensor() : act({T, F});       // up
  const double scale = 1.0 / std::sqrt(double(D));

  // The residual add of each block is fused with the norm that follows it (addRmsNorm): the
  // attention block's with the MLP norm, the MLP block's with the next layer's input norm.
  const size_t nLayers = w_.layers.size();
  if (nLayers > 0) be_.rmsNorm(a, x, w_.layers[0].attnNorm, l.rmsEps);
  for (size_t i = 0; i < nLayers; ++i) {
    checkCancel(cancel);
    const LlmLayerWeights& L = w_.layers[i];
    const KvLayer& cache = kv_.layer(int64_t(i));
    // x += Wo · attn(rope(q), rope(k), v),  a = rmsnorm(x) on entry
    if (stackedQkv) {
      be_.matmul(qkv, a, L.wqkv, L.bqkv ? &L.bqkv : nullptr);
      be_.qkvRopeKvWrite(q, cache, qkv, Hq, KV, cos, sin, batch);
    } else {
      be_.matmul(q, a, L.wq, L.bq ? &L.bq : nullptr);
      be_.matmul(k, a, L.wk, L.bk ? &L.bk : nullptr);
      be_.matmul(v, a, L.wv, L.bv ? &L.bv : nullptr);
      be_.rope(q, Hq, cos, sin);
      be_.rope(k, KV, cos, sin);
      be_.kvWrite(cache, k, v, batch);
    }
    be_.pagedAttention(o, q, cache, batch, Hq, KV, scale);
    be_.matmul(r, o, L.wo, L.bo ? &L.bo : nullptr);
    // x += down(silu(gate(a)) ⊙ up(a)),  a = rmsnorm(x)
    be_.addRmsNorm(a, x, r, L.mlpNorm, l.rmsEps);
    if (stackedGateUp) {
      be_.matmul(gu, a, L.gateUp, nullptr);
      be_.siluMulHalves(g, gu);
    } else {
      be_.matmul(g, a, L.gate, nullptr);
      be_.matmul(u, a, L.up, nullptr);
      be_.siluMul(g, g, u);
    }
    be_.matmul(r, g, L.down, nullptr);
    if (i + 1 < nLayers) be_.addRmsNorm(a, x, r, w_.layers[i + 1].attnNorm, l.rmsEps);
    else be_.add(x, x, r);
  }
  checkCancel(cancel);

  // Final norm and head on the rows whose logits are wanted only (both are per row).
  const int64_t R = int64_t(logitRows.size());
  Tensor last = act({R, H});  // [R, H]
  be_.gatherRows(last, x, logitRows);
  be_.rmsNorm(last, last, w_.finalNorm, l.rmsEps);
  Tensor logits = act({R, w_.vocab});  // [R, V]
  be_.matmul(logits, last, w_.head, nullptr);
  return logits;
}

}  // namespace ivl
