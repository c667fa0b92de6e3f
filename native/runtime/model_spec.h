// The normalized numbers the engine needs, as lib/config.ts produces them from
// config.json (NativeModelSpec on the JS side). The napi layer fills it; validate()
// checks internal consistency so the graph code can trust every field.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/error.h"

namespace ivl {

enum class LlmFamily { Llama, InternLM2, Qwen2, Phi3 };

inline const char* llmFamilyName(LlmFamily f) {
  switch (f) {
    case LlmFamily::Llama: return "llama";
    case LlmFamily::InternLM2: return "internlm2";
    case LlmFamily::Qwen2: return "qwen2";
    case LlmFamily::Phi3: return "phi3";
  }
  return "?";
}

enum class VitNorm { LayerNorm, RmsNorm };

// InternViT: 300M style (LayerNorm, qkv bias) or 6B style (RMSNorm, qk-norm).
struct VisionSpec {
  int64_t hiddenSize = 0;        // C
  int64_t intermediateSize = 0;  // MLP width
  int64_t numHeads = 0;
  int64_t numLayers = 0;        // layers in the checkpoint
  int64_t imageSize = 0;        // the checkpoint's image size (its position-embedding grid = imageSize / patchSize)
  int64_t patchSize = 0;        // 14
  VitNorm norm = VitNorm::LayerNorm;
  double eps = 1e-6;
  bool qkvBias = true;
  bool qkNorm = false;
};

enum class RopeScaling {
  None,
  Dynamic,  // dynamic NTK: base grows when the sequence exceeds maxPositionEmbeddings
  Su,       // Phi3 "su"/"longrope": per-dimension short/long factors + attention factor
};

struct LlmSpec {
  LlmFamily family = LlmFamily::Llama;
  int64_t hiddenSize = 0;        // H
  int64_t intermediateSize = 0;  // F
  int64_t numLayers = 0;
  int64_t numHeads = 0;
  int64_t numKvHeads = 0;
  int64_t headDim = 0;    // D
  int64_t vocabSize = 0;  // from config; the engine uses the embedding tensor's rows
  double rmsEps = 1e-6;
  double ropeTheta = 10000.0;
  int64_t maxPositionEmbeddings = 0;
  bool tieWordEmbeddings = false;
  bool qkvBias = false;  // biases on the q/k/v projections (Qwen2; Llama/InternLM2 with attention bias)
  bool oBias = false;    // bias on the output projection (Llama attention_bias, InternLM2 bias)

  RopeScaling ropeScaling = RopeScaling::None;
  double ropeFactor = 1.0;                      // dynamic: the factor
  int64_t originalMaxPositionEmbeddings = 0;    // su: the short/long threshold
  std::vector<double> shortFactor, longFactor;  // su: [D/2] each
  double attentionFactor = 1.0;                 // su: cos/sin multiplier
};

struct ModelSpec {
  VisionSpec vision;
  LlmSpec llm;
  int64_t tileSize = 0;          // force_image_size: the pixel size of every tile fed to the ViT
  double downsampleRatio = 0.5;  // pixel shuffle ratio
  int64_t selectLayer = -1;      // which ViT hidden state feeds the projector (-1 = last layer)
  int64_t imageContextTokenId = -1;

  // Derived numbers.
  int64_t patchGrid() const { return tileSize / vision.patchSize; }                     // G: patches per side
  int64_t checkpointGrid() const { return vision.imageSize / vision.patchSize; }        // position-embedding grid
  int64_t shuffleScale() const { return int64_t(1.0 / downsampleRatio + 0.5); }         // s: 2 for ratio 0.5
  int64_t numImageToken() const { return (patchGrid() / shuffleScale()) * (patchGrid() / shuffleScale()); }
  int64_t vitLayersUsed() const { return vision.numLayers + 1 + selectLayer; }  // hidden_states[selectLayer]

  // Throws ivl::Error(Config) naming the first inconsistent field.
  void validate() const;
};

}  // namespace ivl
