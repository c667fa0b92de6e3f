#include "runtime/weights.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "runtime/bf16.h"
#include "runtime/bicubic.h"
#include "runtime/f16.h"

namespace ivl {

namespace {

std::string str(int64_t i) { return std::to_string(i); }

// ---- tensor names (SPEC §1, §3) ---------------------------------------------------

const std::string kVit = "vision_model.";
const std::string kLm = "language_model.";

std::string vitLayer(int64_t i) { return kVit + "encoder.layers." + str(i) + "."; }

struct LlmNames {
  std::string embed, finalNorm, head;
  std::string layer(int64_t i) const { return kLm + "model.layers." + str(i) + "."; }
};

LlmNames llmNames(LlmFamily f) {
  LlmNames n;
  n.finalNorm = kLm + "model.norm.weight";
  if (f == LlmFamily::InternLM2) {
    n.embed = kLm + "model.tok_embeddings.weight";
    n.head = kLm + "output.weight";
  } else {
    n.embed = kLm + "model.embed_tokens.weight";
    n.head = kLm + "lm_head.weight";
  }
  return n;
}

// ---- host-side helpers -------------------------------------------------------------

// A stored float tensor widened to f32 on the host: [numel].
std::vector<float> toF32(const StoredTensor& t) {
  std::vector<float> out(size_t(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t h;
    switch (*t.floatDType) {
      case DType::F32: std::memcpy(&out[i], t.data + 4 * i, 4); break;
      case DType::BF16: std::memcpy(&h, t.data + 2 * i, 2); out[i] = bf16ToF32(h); break;
      case DType::F16: std::memcpy(&h, t.data + 2 * i, 2); out[i] = f16ToF32(h); break;
      default: throw Error(ErrorCode::Internal, "toF32: not a float tensor");
    }
  }
  return out;
}

// Rows of t (viewed as [rows, rowLen]) in a new order: dest row r = source row order[r].
// BF16 stays BF16; F32/F16 become F32.
Tensor reorderRows(Backend& be, const StoredTensor& t, const std::vector<int64_t>& order, int64_t rowLen,
                   const Shape& shape, WeightUse use) {
  if (*t.floatDType == DType::BF16) {
    std::vector<uint16_t> host(order.size() * size_t(rowLen));  // [rows, rowLen] bf16
    for (size_t r = 0; r < order.size(); ++r) {
      std::memcpy(host.data() + r * size_t(rowLen), t.data + size_t(order[r] * rowLen) * 2, size_t(rowLen) * 2);
    }
    return be.weightFromHost(host.data(), DType::BF16, shape, use);
  }
  const std::vector<float> src = toF32(t);
  std::vector<float> host(order.size() * size_t(rowLen));  // [rows, rowLen] f32
  for (size_t r = 0; r < order.size(); ++r) {
    std::memcpy(host.data() + r * size_t(rowLen), src.data() + order[r] * rowLen, size_t(rowLen) * 4);
  }
  return be.weightFromHost(host.data(), DType::F32, shape, use);
}

// Shape of the embedding table: rows from the checkpoint (vocab sizes come from tensor
// shapes), or the config's vocab_size when the tensor is absent or not a matrix.
int64_t vocabRows(const ModelSpec& spec, const Checkpoint& ckpt) {
  const StoredTensor* e = ckpt.find(llmNames(spec.llm.family).embed);
  if (e && e->shape.size() == 2 && e->shape[0] > 0) return e->shape[0];
  return spec.llm.vocabSize;
}

bool headIsTied(const ModelSpec& spec, const Checkpoint& ckpt) {
  return spec.llm.tieWordEmbeddings && !ckpt.find(llmNames(spec.llm.family).head);
}

// ---- loader ------------------------------------------------------------------------

class Loader {
 public:
  Loader(const Checkpoint& ckpt, const std::vector<Backend*>& backends, const LoadProgressFn& progress,
         LoadProgress totals)
      : ckpt_(ckpt), backends_(backends), be_(backends.at(0)), progress_(progress), at_(totals) {}
  // The device the next tensors go to (DeviceMap's logical device).
  void onDevice(int d) { be_ = backends_.at(size_t(d)); }

  Tensor matrix(const std::string& name, const Shape& shape, WeightUse use = WeightUse::Matrix) {
    const StoredTensor& st = ckpt_.require(name, shape);
    Tensor t = be_->weight(st, use);
    consumed(st);
    return shape.size() > 2 ? t.view({shape[0], t.numel() / shape[0]}) : t;
  }
  Tensor vector(const std::string& name, const Shape& shape) {
    const StoredTensor& st = ckpt_.require(name, shape);
    Tensor t = be_->weight(st, WeightUse::Vector);
    consumed(st);
    return t.view({t.numel()});
  }
  const StoredTensor& stored(const std::string& name, const Shape& shape) {
    const StoredTensor& st = ckpt_.require(name, shape);
    consumed(st);
    return st;
  }
  Backend& backend() { return *be_; }
  // The end: everything expected has been consumed (reported once more as done == total).
  void finish() {
    at_.tensorsDone = at_.tensorsTotal;
    at_.bytesDone = at_.bytesTotal;
    if (progress_) progress_(at_);
  }

 private:
  // Progress counts each checkpoint tensor once, however often the graph takes it.
  void consumed(const StoredTensor& st) {
    if (!progress_ || !seen_.insert(&st).second) return;
    at_.tensorsDone = std::min(at_.tensorsDone + 1, at_.tensorsTotal);
    at_.bytesDone = std::min(at_.bytesDone + int64_t(st.bytes), at_.bytesTotal);
    progress_(at_);
  }

  const Checkpoint& ckpt_;
  const std::vector<Backend*>& backends_;
  Backend* be_;
  const LoadProgressFn& progress_;
  LoadProgress at_;
  std::unordered_set<const StoredTensor*> seen_;
};

// The form of a matmul weight: the scheme when `on`, else as loaded.
WeightUse matrixUse(const QuantizeOptions& q, bool on) { return q.enabled() && on ? q.scheme : WeightUse::Matrix; }

VisionWeights loadVision(const ModelSpec& spec, Loader& ld, const QuantizeOptions& quant, const DeviceMap& map) {
  ld.onDevice(map.vision);
  const VisionSpec& v = spec.vision;
  const int64_t C = v.hiddenSize, I = v.intermediateSize, p = v.patchSize;
  const int64_t G0 = spec.checkpointGrid(), G = spec.patchGrid(), s = spec.shuffleScale(), H = spec.llm.hiddenSize;
  VisionWeights w;
  w.patchW = ld.matrix(kVit + "embeddings.patch_embedding.weight", {C, 3, p, p});  // -> [C, 3·p·p]
  w.patchB = ld.vector(kVit + "embeddings.patch_embedding.bias", {C});
  w.cls = ld.vector(kVit + "embeddings.class_embedding", {1, 1, C});

  // Position embedding [1, 1 + G0², C] -> [1 + G², C]: CLS row as is, the G0×G0 grid
  // resized bicubically to G×G when the tile size differs (identity otherwise).
  std::vector<float> pos0 = toF32(ld.stored(kVit + "embeddings.position_embedding", {1, 1 + G0 * G0, C}));
  std::vector<float> pos(size_t((1 + G * G) * C));
  std::memcpy(pos.data(), pos0.data(), size_t(C) * 4);
  if (G == G0) {
    std::memcpy(pos.data() + C, pos0.data() + C, size_t(G * G * C) * 4);
  } else {
    std::vector<float> grid = bicubicResize(pos0.data() + C, G0, G0, C, G, G);  // [G, G, C]
    std::memcpy(pos.data() + C, grid.data(), grid.size() * 4);
  }
  w.pos = ld.backend().weightFromHost(pos.data(), DType::F32, {1 + G * G, C}, WeightUse::Vector);

  for (int64_t i = 0; i < spec.vitLayersUsed(); ++i) {
    const std::string L = vitLayer(i);
    VitLayerWeights lw;
    const WeightUse mu = matrixUse(quant, quant.vision);
    lw.wqkv = ld.matrix(L + "attn.qkv.weight", {3 * C, C}, mu);  // rows [q | k | v]
    lw.wq = lw.wqkv.slice0(0, C);
    lw.wk = lw.wqkv.slice0(C, C);
    lw.wv = lw.wqkv.slice0(2 * C, C);
    if (v.qkvBias) {
      lw.bqkv = ld.vector(L + "attn.qkv.bias", {3 * C});
      lw.bq = lw.bqkv.slice0(0, C);
      lw.bk = lw.bqkv.slice0(C, C);
      lw.bv = lw.bqkv.slice0(2 * C, C);
    }
    if (v.qkNorm) {
      lw.qNormW = ld.vector(L + "attn.q_norm.weight", {C});
      lw.kNormW = ld.vector(L + "attn.k_norm.weight", {C});
    }
    lw.proj = ld.matrix(L + "attn.proj.weight", {C, C}, mu);
    lw.projB = ld.vector(L + "attn.proj.bias", {C});
    lw.fc1 = ld.matrix(L + "mlp.fc1.weight", {I, C}, mu);
    lw.fc1B = ld.vector(L + "mlp.fc1.bias", {I});
    lw.fc2 = ld.matrix(L + "mlp.fc2.weight", {C, I}, mu);
    lw.fc2B = ld.vector(L + "mlp.fc2.bias", {C});
    lw.norm1W = ld.vector(L + "norm1.weight", {C});
    lw.norm2W = ld.vector(L + "norm2.weight", {C});
    if (v.norm == VitNorm::LayerNorm) {
      lw.norm1B = ld.vector(L + "norm1.bias", {C});
      lw.norm2B = ld.vector(L + "norm2.bias", {C});
    }
    lw.ls1 = ld.vector(L + "ls1", {C});
    lw.ls2 = ld.vector(L + "ls2", {C});
    w.layers.push_back(std::move(lw));
  }

  const int64_t P = s * s * C;
  w.lnW = ld.vector("mlp1.0.weight", {P});
  w.lnB = ld.vector("mlp1.0.bias", {P});
  w.fc1 = ld.matrix("mlp1.1.weight", {H, P}, matrixUse(quant, quant.projector));
  w.fc1B = ld.vector("mlp1.1.bias", {H});
  w.fc2 = ld.matrix("mlp1.3.weight", {H, H}, matrixUse(quant, quant.projector));
  w.fc2B = ld.vector("mlp1.3.bias", {H});
  return w;
}

// wq/wk/wv as row slices of the stacked lw.wqkv [q | k | v].
void splitQkv(LlmLayerWeights& lw, int64_t qRows, int64_t kvRows) {
  lw.wq = lw.wqkv.slice0(0, qRows);
  lw.wk = lw.wqkv.slice0(qRows, kvRows);
  lw.wv = lw.wqkv.slice0(qRows + kvRows, kvRows);
}

// Vectors stored apart, concatenated on the host (biases: a few KB).
Tensor stackedVector(Loader& ld, const std::vector<std::string>& names, const std::vector<int64_t>& sizes) {
  std::vector<float> host;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::vector<float> part = toF32(ld.stored(names[i], {sizes[i]}));
    host.insert(host.end(), part.begin(), part.end());
  }
  return ld.backend().weightFromHost(host.data(), DType::F32, {int64_t(host.size())}, WeightUse::Vector);
}

LlmWeights loadLlm(const ModelSpec& spec, const Checkpoint& ckpt, Loader& ld, const QuantizeOptions& quant,
                   const DeviceMap& map) {
  const WeightUse mu = matrixUse(quant, true);  // decoder linears
  const LlmSpec& l = spec.llm;
  const int64_t H = l.hiddenSize, F = l.intermediateSize, D = l.headDim;
  const int64_t Hq = l.numHeads, KV = l.numKvHeads, V = vocabRows(spec, ckpt);
  const LlmNames names = llmNames(l.family);
  LlmWeights w;
  w.vocab = V;
  ld.onDevice(map.embed);
  w.embed = ld.matrix(names.embed, {V, H});
  for (int64_t i = 0; i < l.numLayers; ++i) {
    ld.onDevice(map.layer(size_t(i)));
    const std::string L = names.layer(i);
    LlmLayerWeights lw;
    switch (l.family) {
      case LlmFamily::Llama:
      case LlmFamily::Qwen2: {
        const StoredTensor* qkvParts[] = {&ld.stored(L + "self_attn.q_proj.weight", {Hq * D, H}),
                                          &ld.stored(L + "self_attn.k_proj.weight", {KV * D, H}),
                                          &ld.stored(L + "self_attn.v_proj.weight", {KV * D, H})};
        lw.wqkv = ld.backend().stackedWeight({qkvParts[0], qkvParts[1], qkvParts[2]}, mu);
        if (lw.wqkv) {
          splitQkv(lw, Hq * D, KV * D);
        } else {
          lw.wq = ld.matrix(L + "self_attn.q_proj.weight", {Hq * D, H}, mu);
          lw.wk = ld.matrix(L + "self_attn.k_proj.weight", {KV * D, H}, mu);
          lw.wv = ld.matrix(L + "self_attn.v_proj.weight", {KV * D, H}, mu);
        }
        if (l.qkvBias) {
          lw.bqkv = stackedVector(ld, {L + "self_attn.q_proj.bias", L + "self_attn.k_proj.bias",
                                       L + "self_attn.v_proj.bias"},
                                  {Hq * D, KV * D, KV * D});
          lw.bq = lw.bqkv.slice0(0, Hq * D);
          lw.bk = lw.bqkv.slice0(Hq * D, KV * D);
          lw.bv = lw.bqkv.slice0((Hq + KV) * D, KV * D);
        }
        lw.wo = ld.matrix(L + "self_attn.o_proj.weight", {H, Hq * D}, mu);
        if (l.oBias) lw.bo = ld.vector(L + "self_attn.o_proj.bias", {H});
        lw.gateUp = ld.backend().stackedWeight(
            {&ld.stored(L + "mlp.gate_proj.weight", {F, H}), &ld.stored(L + "mlp.up_proj.weight", {F, H})}, mu);
        if (lw.gateUp) {
          lw.gate = lw.gateUp.slice0(0, F);
          lw.up = lw.gateUp.slice0(F, F);
        } else {
          lw.gate = ld.matrix(L + "mlp.gate_proj.weight", {F, H}, mu);
          lw.up = ld.matrix(L + "mlp.up_proj.weight", {F, H}, mu);
        }
        lw.down = ld.matrix(L + "mlp.down_proj.weight", {H, F}, mu);
        lw.attnNorm = ld.vector(L + "input_layernorm.weight", {H});
        lw.mlpNorm = ld.vector(L + "post_attention_layernorm.weight", {H});
        break;
      }
      case LlmFamily::Phi3: {
        lw.wqkv = ld.matrix(L + "self_attn.qkv_proj.weight", {(Hq + 2 * KV) * D, H}, mu);  // rows [q | k | v]
        splitQkv(lw, Hq * D, KV * D);
        if (l.qkvBias) {
          lw.bqkv = ld.vector(L + "self_attn.qkv_proj.bias", {(Hq + 2 * KV) * D});
          lw.bq = lw.bqkv.slice0(0, Hq * D);
          lw.bk = lw.bqkv.slice0(Hq * D, KV * D);
          lw.bv = lw.bqkv.slice0((Hq + KV) * D, KV * D);
        }
        lw.wo = ld.matrix(L + "self_attn.o_proj.weight", {H, Hq * D}, mu);
        if (l.oBias) lw.bo = ld.vector(L + "self_attn.o_proj.bias", {H});
        lw.gateUp = ld.matrix(L + "mlp.gate_up_proj.weight", {2 * F, H}, mu);  // rows [gate | up]
        lw.gate = lw.gateUp.slice0(0, F);
        lw.up = lw.gateUp.slice0(F, F);
        lw.down = ld.matrix(L + "mlp.down_proj.weight", {H, F}, mu);
        lw.attnNorm = ld.vector(L + "input_layernorm.weight", {H});
        lw.mlpNorm = ld.vector(L + "post_attention_layernorm.weight", {H});
        break;
      }
      case LlmFamily::InternLM2: {
        // wqkv rows are grouped [KV][G + 2][D] (G = Hq / KV): in kv group g, slots 0..G-1
        // are q heads g·G.., slot G is k head g, slot G+1 is v head g. Reorder to [q | k | v].
        const int64_t G = Hq / KV;
        std::vector<int64_t> order;  // source row of each destination row
        for (int64_t h = 0; h < Hq; ++h) {
          for (int64_t d = 0; d < D; ++d) order.push_back(((h / G) * (G + 2) + h % G) * D + d);
        }
        for (int64_t g = 0; g < KV; ++g) {
          for (int64_t d = 0; d < D; ++d) order.push_back((g * (G + 2) + G) * D + d);
        }
        for (int64_t g = 0; g < KV; ++g) {
          for (int64_t d = 0; d < D; ++d) order.push_back((g * (G + 2) + G + 1) * D + d);
        }
        const int64_t rows = (Hq + 2 * KV) * D;
        lw.wqkv = reorderRows(ld.backend(), ld.stored(L + "attention.wqkv.weight", {rows, H}), order, H,
                              {rows, H}, mu);
        splitQkv(lw, Hq * D, KV * D);
        if (l.qkvBias) {
          lw.bqkv = reorderRows(ld.backend(), ld.stored(L + "attention.wqkv.bias", {rows}), order, 1, {rows},
                                WeightUse::Vector);
          lw.bq = lw.bqkv.slice0(0, Hq * D);
          lw.bk = lw.bqkv.slice0(Hq * D, KV * D);
          lw.bv = lw.bqkv.slice0((Hq + KV) * D, KV * D);
        }
        lw.wo = ld.matrix(L + "attention.wo.weight", {H, Hq * D}, mu);
        if (l.oBias) lw.bo = ld.vector(L + "attention.wo.bias", {H});
        lw.gateUp = ld.backend().stackedWeight(
            {&ld.stored(L + "feed_forward.w1.weight", {F, H}), &ld.stored(L + "feed_forward.w3.weight", {F, H})}, mu);
        if (lw.gateUp) {
          lw.gate = lw.gateUp.slice0(0, F);
          lw.up = lw.gateUp.slice0(F, F);
        } else {
          lw.gate = ld.matrix(L + "feed_forward.w1.weight", {F, H}, mu);
          lw.up = ld.matrix(L + "feed_forward.w3.weight", {F, H}, mu);
        }
        lw.down = ld.matrix(L + "feed_forward.w2.weight", {H, F}, mu);
        lw.attnNorm = ld.vector(L + "attention_norm.weight", {H});
        lw.mlpNorm = ld.vector(L + "ffn_norm.weight", {H});
        break;
      }
    }
    w.layers.push_back(std::move(lw));
  }
  ld.onDevice(map.head);
  w.finalNorm = ld.vector(names.finalNorm, {H});
  const WeightUse hu = matrixUse(quant, quant.head);
  if (!headIsTied(spec, ckpt)) {
    w.head = ld.matrix(names.head, {V, H}, hu);
  } else if (isInt8Use(hu) || map.head != map.embed) {  // tied: a copy for the head (int8, or on its own device)
    w.head = ld.matrix(names.embed, {V, H}, hu);
  } else {
    w.head = w.embed;
  }
  return w;
}

}  // namespace

std::vector<ExpectedTensor> expectedTensors(const ModelSpec& spec, const Checkpoint& ckpt) {
  std::vector<ExpectedTensor> out;
  auto add = [&](std::string name, Shape shape) { out.push_back({std::move(name), std::move(shape)}); };

  const VisionSpec& v = spec.vision;
  const int64_t C = v.hiddenSize, I = v.intermediateSize, p = v.patchSize, G0 = spec.checkpointGrid();
  add(kVit + "embeddings.class_embedding", {1, 1, C});
  add(kVit + "embeddings.patch_embedding.weight", {C, 3, p, p});
  add(kVit + "embeddings.patch_embedding.bias", {C});
  add(kVit + "embeddings.position_embedding", {1, 1 + G0 * G0, C});
  for (int64_t i = 0; i < v.numLayers; ++i) {
    const std::string L = vitLayer(i);
    add(L + "attn.qkv.weight", {3 * C, C});
    if (v.qkvBias) add(L + "attn.qkv.bias", {3 * C});
    if (v.qkNorm) {
      add(L + "attn.q_norm.weight", {C});
      add(L + "attn.k_norm.weight", {C});
    }
    add(L + "attn.proj.weight", {C, C});
    add(L + "attn.proj.bias", {C});
    add(L + "mlp.fc1.weight", {I, C});
    add(L + "mlp.fc1.bias", {I});
    add(L + "mlp.fc2.weight", {C, I});
    add(L + "mlp.fc2.bias", {C});
    add(L + "norm1.weight", {C});
    if (v.norm == VitNorm::LayerNorm) add(L + "norm1.bias", {C});
    add(L + "norm2.weight", {C});
    if (v.norm == VitNorm::LayerNorm) add(L + "norm2.bias", {C});
    add(L + "ls1", {C});
    add(L + "ls2", {C});
  }
  const LlmSpec& l = spec.llm;
  const int64_t s = spec.shuffleScale(), P = s * s * C, H = l.hiddenSize;
  add("mlp1.0.weight", {P});
  add("mlp1.0.bias", {P});
  add("mlp1.1.weight", {H, P});
  add("mlp1.1.bias", {H});
  add("mlp1.3.weight", {H, H});
  add("mlp1.3.bias", {H});

  const int64_t F = l.intermediateSize, D = l.headDim, Hq = l.numHeads, KV = l.numKvHeads;
  const int64_t V = vocabRows(spec, ckpt);
  const LlmNames names = llmNames(l.family);
  add(names.embed, {V, H});
  for (int64_t i = 0; i < l.numLayers; ++i) {
    const std::string L = names.layer(i);
    switch (l.family) {
      case LlmFamily::Llama:
      case LlmFamily::Qwen2:
        add(L + "self_attn.q_proj.weight", {Hq * D, H});
        if (l.qkvBias) add(L + "self_attn.q_proj.bias", {Hq * D});
        add(L + "self_attn.k_proj.weight", {KV * D, H});
        if (l.qkvBias) add(L + "self_attn.k_proj.bias", {KV * D});
        add(L + "self_attn.v_proj.weight", {KV * D, H});
        if (l.qkvBias) add(L + "self_attn.v_proj.bias", {KV * D});
        add(L + "self_attn.o_proj.weight", {H, Hq * D});
        if (l.oBias) add(L + "self_attn.o_proj.bias", {H});
        add(L + "mlp.gate_proj.weight", {F, H});
        add(L + "mlp.up_proj.weight", {F, H});
        add(L + "mlp.down_proj.weight", {H, F});
        add(L + "input_layernorm.weight", {H});
        add(L + "post_attention_layernorm.weight", {H});
        break;
      case LlmFamily::Phi3:
        add(L + "self_attn.qkv_proj.weight", {(Hq + 2 * KV) * D, H});
        if (l.qkvBias) add(L + "self_attn.qkv_proj.bias", {(Hq + 2 * KV) * D});
        add(L + "self_attn.o_proj.weight", {H, Hq * D});
        if (l.oBias) add(L + "self_attn.o_proj.bias", {H});
        add(L + "mlp.gate_up_proj.weight", {2 * F, H});
        add(L + "mlp.down_proj.weight", {H, F});
        add(L + "input_layernorm.weight", {H});
        add(L + "post_attention_layernorm.weight", {H});
        break;
      case LlmFamily::InternLM2:
        add(L + "attention.wqkv.weight", {(Hq + 2 * KV) * D, H});
        if (l.qkvBias) add(L + "attention.wqkv.bias", {(Hq + 2 * KV) * D});
        add(L + "attention.wo.weight", {H, Hq * D});
        if (l.oBias) add(L + "attention.wo.bias", {H});
        add(L + "feed_forward.w1.weight", {F, H});
        add(L + "feed_forward.w3.weight", {F, H});
        add(L + "feed_forward.w2.weight", {H, F});
        add(L + "attention_norm.weight", {H});
        add(L + "ffn_norm.weight", {H});
        break;
    }
  }
  add(names.finalNorm, {H});
  if (!headIsTied(spec, ckpt)) add(names.head, {V, H});
  return out;
}

ModelWeights loadWeights(const ModelSpec& spec, const Checkpoint& ckpt, const std::vector<Backend*>& backends,
                         const DeviceMap& map, const QuantizeOptions& quant, const LoadProgressFn& progress) {
  validateDeviceMap(map, spec.llm.numLayers);
  require(int(backends.size()) >= map.numDevices(), ErrorCode::Internal, "loadWeights: a backend per device");
  for (Backend* b : backends) {
    if (quant.enabled() && !b->supportsInt8()) {
      throw Error(ErrorCode::InvalidArg, std::string("int8 on the ") + b->name() +
                                             " backend is not available in this build yet (use dtype 'bf16')");
    }
  }
  const std::vector<ExpectedTensor> expected = expectedTensors(spec, ckpt);
  ckpt.requireAll(expected);
  LoadProgress totals;
  for (const ExpectedTensor& e : expected) {
    totals.tensorsTotal += 1;
    totals.bytesTotal += int64_t(ckpt.require(e.name, e.shape).bytes);
  }
  Loader ld(ckpt, backends, progress, totals);
  if (progress) progress(totals);  // 0 of the totals: the caller can size its display
  ModelWeights w;
  w.vision = loadVision(spec, ld, quant, map);
  w.llm = loadLlm(spec, ckpt, ld, quant, map);
  ld.finish();
  return w;
}

ModelWeights loadWeights(const ModelSpec& spec, const Checkpoint& ckpt, Backend& backend,
                         const QuantizeOptions& quant, const LoadProgressFn& progress) {
  return loadWeights(spec, ckpt, {&backend}, DeviceMap{}, quant, progress);
}

}  // namespace ivl
