#include "runtime/decoder.h"

#include <cmath>

#include "runtime/vision.h"  // checkCancel

namespace ivl {

Decoder::Decoder(const std::vector<Backend*>& backends, const DeviceMap& map, const ModelSpec& spec,
                 const LlmWeights& weights, KvCache& kv)
    : backends_(backends), map_(map), spec_(spec), w_(weights), kv_(kv) {}

Tensor Decoder::embed(const std::vector<int32_t>& ids) {
  Backend& be = device(map_.embed);
  Tensor x = be.alloc(be.activationDType(), {int64_t(ids.size()), spec_.llm.hiddenSize});  // [T, H]
  be.embedding(x, w_.embed, ids);
  return x;
}

Tensor Decoder::moveTo(Tensor x, int from, int to) {
  return from == to ? x : device(to).copyFrom(x, device(from));
}

// The activations one device needs for a run of layers.
struct Decoder::Scratch {
  Tensor cos, sin;  // [T, D/2]
  Tensor a;         // normed input [T, H]
  Tensor q, o;      // [T, Hq·D]
  Tensor k, v;      // [T, KV·D] (parts run apart only)
  Tensor qkv;       // [T, (Hq + 2·KV)·D] (stacked)
  Tensor r;         // projection / MLP output [T, H]
  Tensor g, u;      // gate, then silu(gate) ⊙ up; up (parts apart only)  [T, F]
  Tensor gu;        // [gate | up] (stacked) [T, 2F]
};

Decoder::Scratch Decoder::scratch(Backend& be, int64_t T, const std::vector<float>& cosHost,
                                  const std::vector<float>& sinHost, bool stackedQkv, bool stackedGateUp) {
  const LlmSpec& l = spec_.llm;
  const int64_t H = l.hiddenSize, F = l.intermediateSize, D = l.headDim, Hq = l.numHeads, KV = l.numKvHeads;
  const DType dt = be.activationDType();
  Scratch s;
  s.cos = be.uploadF32(cosHost.data(), {T, D / 2});
  s.sin = be.uploadF32(sinHost.data(), {T, D / 2});
  s.a = be.alloc(dt, {T, H});
  s.q = be.alloc(dt, {T, Hq * D});
  s.o = be.alloc(dt, {T, Hq * D});
  s.r = be.alloc(dt, {T, H});
  s.g = be.alloc(dt, {T, F});
  if (stackedQkv) {
    s.qkv = be.alloc(dt, {T, (Hq + 2 * KV) * D});
  } else {
    s.k = be.alloc(dt, {T, KV * D});
    s.v = be.alloc(dt, {T, KV * D});
  }
  if (stackedGateUp) s.gu = be.alloc(dt, {T, 2 * F});
  else s.u = be.alloc(dt, {T, F});
  return s;
}

Tensor Decoder::forward(Tensor x, const PagedBatch& batch, const std::vector<float>& cosHost,
                        const std::vector<float>& sinHost, const std::vector<int64_t>& logitRows,
                        const std::atomic<bool>* cancel) {
  const LlmSpec& l = spec_.llm;
  const int64_t T = batch.numTokens(), D = l.headDim, Hq = l.numHeads, KV = l.numKvHeads;
  require(x.rows() == T && x.cols() == l.hiddenSize, ErrorCode::Internal, "decoder: input rows do not match the batch");
  // Stacked weights (weights.h) run as one matmul each: one pass over the weights instead of
  // three (q/k/v) or two (gate/up), which is what a memory-bound decode step costs.
  const bool stackedQkv = !w_.layers.empty() && w_.layers[0].wqkv.defined();
  const bool stackedGateUp = !w_.layers.empty() && w_.layers[0].gateUp.defined();
  const double scale = 1.0 / std::sqrt(double(D));
  const size_t nLayers = w_.layers.size();

  // Layers run in runs of consecutive layers on one device; x moves between runs. Each block's
  // residual add is issued with the norm that follows it and the projection before it
  // (matmulAddRmsNorm: the o projection with the MLP's norm, the down projection with the next
  // layer's input norm), and that norm's output goes to the next projection through the
  // rmsNormed* seams. A backend may leave the norm deferred there (the CUDA backend on int8
  // decode rows: x ⊙ g from the residual GEMV, 1/rms applied by the next GEMV, no norm kernel
  // between them); composed, these are the matmul, addRmsNorm and matmul they always were. The
  // stacked gate/up and the activation are one seam too (the activation in the GEMV's epilogue
  // on int8 decode rows), as are the stacked qkv rows and attention (rope inside attention on
  // decode steps). Unstacked weights read a normed a (no reader: never deferred).
  int at = map_.embed;
  for (size_t i0 = 0; i0 < nLayers;) {
    const int dev = map_.layer(i0);
    size_t i1 = i0;
    while (i1 < nLayers && map_.layer(i1) == dev) ++i1;
    x = moveTo(std::move(x), at, dev);
    at = dev;
    Backend& be = device(dev);
    Scratch s = scratch(be, T, cosHost, sinHost, stackedQkv, stackedGateUp);
    // s.a holds its norm's x ⊙ g with 1/rms pending (rmsNormMayDefer, matmulAddRmsNorm). Whether a
    // norm defers depends on the rows and the weights only, never on where a run begins: a
    // layer split over devices computes the same bits as on one.
    bool deferred = be.rmsNormMayDefer(s.a, x, w_.layers[i0].attnNorm, l.rmsEps,
                                       stackedQkv ? &w_.layers[i0].wqkv : nullptr);
    for (size_t i = i0; i < i1; ++i) {
      checkCancel(cancel);
      const LlmLayerWeights& L = w_.layers[i];
      const KvLayer& cache = kv_.layer(int64_t(i));
      // attn(rope(q), rope(k), v) of q, k, v = projections of a = rmsnorm(x)
      if (stackedQkv) {
        be.rmsNormedMatmul(s.qkv, s.a, L.wqkv, L.bqkv ? &L.bqkv : nullptr, deferred);
        be.qkvRopeAttention(s.o, s.q, cache, s.qkv, Hq, KV, s.cos, s.sin, batch, scale);
      } else {
        be.matmul(s.q, s.a, L.wq, L.bq ? &L.bq : nullptr);
        be.matmul(s.k, s.a, L.wk, L.bk ? &L.bk : nullptr);
        be.matmul(s.v, s.a, L.wv, L.bv ? &L.bv : nullptr);
        be.rope(s.q, Hq, s.cos, s.sin);
        be.rope(s.k, KV, s.cos, s.sin);
        be.kvWrite(cache, s.k, s.v, batch);
        be.pagedAttention(s.o, s.q, cache, batch, Hq, KV, scale);
      }
      // x += Wo · attn,  a = rmsnorm(x);  then x += down(silu(gate(a)) ⊙ up(a))
      deferred = be.matmulAddRmsNorm(x, s.a, s.r, s.o, L.wo, L.bo ? &L.bo : nullptr, L.mlpNorm, l.rmsEps,
                                     stackedGateUp ? &L.gateUp : nullptr);
      if (stackedGateUp) {
        be.rmsNormedMatmulSiluMulHalves(s.g, s.a, L.gateUp, s.gu, deferred);
      } else {
        be.matmul(s.g, s.a, L.gate, nullptr);
        be.matmul(s.u, s.a, L.up, nullptr);
        be.siluMul(s.g, s.g, s.u);
      }
      if (i + 1 < i1)  // the next layer's input norm goes with this residual add
        deferred = be.matmulAddRmsNorm(x, s.a, s.r, s.g, L.down, nullptr, w_.layers[i + 1].attnNorm, l.rmsEps,
                                       stackedQkv ? &w_.layers[i + 1].wqkv : nullptr);
      else
        be.matmulAdd(x, s.r, s.g, L.down, nullptr);
    }
    i0 = i1;
  }
  checkCancel(cancel);

  // Final norm and head on the rows whose logits are wanted only (both are per row).
  x = moveTo(std::move(x), at, map_.head);
  Backend& hb = device(map_.head);
  const int64_t R = int64_t(logitRows.size());
  Tensor last = hb.alloc(hb.activationDType(), {R, l.hiddenSize});  // [R, H]
  hb.gatherRows(last, x, logitRows);
  hb.rmsNorm(last, last, w_.finalNorm, l.rmsEps);
  Tensor logits = hb.alloc(hb.activationDType(), {R, w_.vocab});  // [R, V]
  hb.matmul(logits, last, w_.head, nullptr);
  return logits;
}

}  // namespace ivl
