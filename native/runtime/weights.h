// Checkpoint tensors -> backend tensors, per family, in one normalized form the
// graph code uses for every family:
//   decoder layer: wq [Hq·D, H], wk/wv [KV·D, H] (+ biases), wo [H, Hq·D],
//                  gate/up [F, H], down [H, F], two RMSNorm weights [H]
//   Phi3's fused qkv_proj / gate_up_proj become row slices (no copy); InternLM2's
//   grouped wqkv is reordered to [q | k | v] once at load.
// expectedTensors() lists every tensor the config implies, with its shape, so the
// checkpoint is checked completely before anything is loaded or computed.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/checkpoint.h"
#include "runtime/device_map.h"
#include "runtime/model_spec.h"

namespace ivl {

struct VitLayerWeights {
  Tensor norm1W, norm1B;      // [C] (B only for LayerNorm)
  Tensor wqkv, bqkv;          // attn.qkv as stored: [3C, C] rows [q | k | v], [3C] (bias optional)
  Tensor wq, wk, wv;          // [C, C] each: row slices of wqkv
  Tensor bq, bk, bv;          // [C] each (qkv bias)
  Tensor qNormW, kNormW;      // [C] (qk normalization)
  Tensor proj, projB;         // [C, C], [C]
  Tensor ls1, ls2;            // [C] layer scales
  Tensor norm2W, norm2B;      // [C]
  Tensor fc1, fc1B;           // [I, C], [I]
  Tensor fc2, fc2B;           // [C, I], [C]
};

struct VisionWeights {
  Tensor patchW, patchB;  // [C, 3·p·p] (conv weight [C, 3, p, p] as a matrix), [C]
  Tensor cls;             // [C]
  Tensor pos;             // [1 + G², C] for the tile grid G (bicubic-resized if the checkpoint's grid differs)
  std::vector<VitLayerWeights> layers;  // the layers actually used (selectLayer)
  // mlp1: LayerNorm(s²C) -> Linear(s²C -> H) -> GELU -> Linear(H -> H)
  Tensor lnW, lnB;        // [s²C]
  Tensor fc1, fc1B;       // [H, s²C], [H]
  Tensor fc2, fc2B;       // [H, H], [H]
};

struct LlmLayerWeights {
  Tensor attnNorm;        // [H]
  Tensor wq, wk, wv;      // [Hq·D, H], [KV·D, H], [KV·D, H]
  Tensor bq, bk, bv;      // biases or undefined
  Tensor wo, bo;          // [H, Hq·D], bias or undefined
  Tensor mlpNorm;         // [H]
  Tensor gate, up, down;  // [F, H], [F, H], [H, F]
  // The same weights stacked, when the checkpoint fuses them or the backend stacks them
  // (Backend::stackedWeight); wq/wk/wv and gate/up are then row slices of these. Undefined
  // otherwise, and the graph runs the parts one by one.
  Tensor wqkv, bqkv;      // [(Hq + 2·KV)·D, H], bias [(Hq + 2·KV)·D] or undefined
  Tensor gateUp;          // [2F, H]
};

struct LlmWeights {
  int64_t vocab = 0;  // rows of the embedding table
  Tensor embed;       // [V, H]
  std::vector<LlmLayerWeights> layers;
  Tensor finalNorm;   // [H]
  Tensor head;        // [V, H] (the embedding table when tied)
};

struct ModelWeights {
  VisionWeights vision;
  LlmWeights llm;
};

// Which matmul weights are quantized at load (W8A16, issue #7). With an Int8 scheme every
// decoder linear (q/k/v/o, gate/up/down) is quantized; the ViT encoder layers' linears
// (qkv, proj, fc1, fc2), the projector (mlp1 fc1/fc2) and the LM head only when asked.
// The token embedding table, the ViT patch embedding and every vector stay as loaded.
// A tied head asked to be quantized gets its own int8 copy (the embedding stays bf16).
struct QuantizeOptions {
  WeightUse scheme = WeightUse::Matrix;  // Matrix: none; Int8PerChannel or Int8PerGroup128
  bool vision = false;
  bool projector = false;
  bool head = false;
  bool enabled() const { return isInt8Use(scheme); }
};

// Every tensor the model needs, in a fixed order (vision, projector, decoder), with the
// shapes the config implies. The vocabulary size comes from the embedding tensor.
std::vector<ExpectedTensor> expectedTensors(const ModelSpec& spec, const Checkpoint& ckpt);

// How far loadWeights() is: checkpoint tensors (of expectedTensors()) and their stored
// bytes handed to the backend so far. Called on the loading thread after each tensor,
// in increasing order, ending with done == total; it must not throw.
struct LoadProgress {
  int64_t tensorsDone = 0, tensorsTotal = 0;
  int64_t bytesDone = 0, bytesTotal = 0;
};
using LoadProgressFn = std::function<void(const LoadProgress&)>;

// Checks expectedTensors() against the checkpoint (first mismatch throws), then loads.
// Throws InvalidArg when quantization is asked of a backend without int8 support.
ModelWeights loadWeights(const ModelSpec& spec, const Checkpoint& ckpt, Backend& backend,
                         const QuantizeOptions& quant = {}, const LoadProgressFn& progress = {});
// Split across devices: each part on backends[its DeviceMap device] (a tied head is copied
// when it sits on another device than the embeddings). Throws InvalidArg for a bad map.
ModelWeights loadWeights(const ModelSpec& spec, const Checkpoint& ckpt, const std::vector<Backend*>& backends,
                         const DeviceMap& map, const QuantizeOptions& quant = {},
                         const LoadProgressFn& progress = {});

}  // namespace ivl
