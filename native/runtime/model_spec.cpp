#include "runtime/model_spec.h"

#include <cmath>

namespace ivl {

namespace {
void need(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::Config, "invalid model spec: " + what);
}
// The same bounds as lib/config.ts, for callers of the addon that skip it: every size product
// the engine forms (rows × width, vocabulary × width, the tile grid) then fits in int64, and an
// absurd config fails here instead of as an allocation of petabytes or an overflowed shape.
constexpr int64_t kMaxSize = int64_t(1) << 24;   // widths, vocabulary, positions
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxImage = int64_t(1) << 14;  // image and patch sizes in pixels
constexpr int64_t kMaxHeadDim = 512;             // the attention kernels' widest head
void bounded(int64_t v, int64_t max, const std::string& name) {
  need(v <= max, name + " must be at most " + std::to_string(max) + " (got " + std::to_string(v) + ")");
}
}  // namespace

void ModelSpec::validate() const {
  const VisionSpec& v = vision;
  need(v.hiddenSize > 0, "vision.hiddenSize must be positive");
  need(v.intermediateSize > 0, "vision.intermediateSize must be positive");
  need(v.numHeads > 0 && v.hiddenSize % v.numHeads == 0, "vision.hiddenSize must be a multiple of vision.numHeads");
  need(v.numLayers > 0, "vision.numLayers must be positive");
  need(v.patchSize > 0, "vision.patchSize must be positive");
  need(v.imageSize > 0 && v.imageSize % v.patchSize == 0, "vision.imageSize must be a positive multiple of patchSize");
  need(v.eps > 0, "vision.eps must be positive");
  need(tileSize > 0 && tileSize % v.patchSize == 0, "tileSize (force_image_size) must be a positive multiple of patchSize");
  need(downsampleRatio > 0 && downsampleRatio <= 1, "downsampleRatio must be in (0, 1]");
  const int64_t s = shuffleScale();
  need(std::fabs(1.0 / double(s) - downsampleRatio) < 1e-9, "downsampleRatio must be 1/n for an integer n");
  need(patchGrid() % s == 0, "the patch grid (tileSize / patchSize) must be divisible by 1 / downsampleRatio");
  need(selectLayer < 0 && selectLayer >= -v.numLayers, "selectLayer must be between -numLayers and -1");

  const LlmSpec& l = llm;
  need(l.hiddenSize > 0, "llm.hiddenSize must be positive");
  need(l.intermediateSize > 0, "llm.intermediateSize must be positive");
  need(l.numLayers > 0, "llm.numLayers must be positive");
  need(l.numHeads > 0 && l.numKvHeads > 0 && l.numHeads % l.numKvHeads == 0,
       "llm.numHeads must be a positive multiple of llm.numKvHeads");
  need(l.headDim > 0 && l.headDim % 2 == 0, "llm.headDim must be positive and even");
  need(l.rmsEps > 0, "llm.rmsEps must be positive");
  need(l.ropeTheta > 0, "llm.ropeTheta must be positive");
  need(l.maxPositionEmbeddings > 0, "llm.maxPositionEmbeddings must be positive");
  if (l.ropeScaling == RopeScaling::Dynamic) need(l.ropeFactor >= 1, "llm.ropeFactor must be at least 1");
  if (l.ropeScaling == RopeScaling::Su) {
    need(l.originalMaxPositionEmbeddings > 0, "llm.originalMaxPositionEmbeddings must be positive");
    need(int64_t(l.shortFactor.size()) == l.headDim / 2, "llm.shortFactor must have headDim / 2 entries");
    need(int64_t(l.longFactor.size()) == l.headDim / 2, "llm.longFactor must have headDim / 2 entries");
    need(l.attentionFactor > 0, "llm.attentionFactor must be positive");
  }
  need(imageContextTokenId >= 0, "imageContextTokenId must be a token id");

  bounded(v.hiddenSize, kMaxSize, "vision.hiddenSize");
  bounded(v.intermediateSize, kMaxSize, "vision.intermediateSize");
  bounded(v.numLayers, kMaxLayers, "vision.numLayers");
  bounded(v.imageSize, kMaxImage, "vision.imageSize");
  bounded(tileSize, kMaxImage, "tileSize");
  bounded(v.hiddenSize / v.numHeads, kMaxHeadDim, "the vision head size (hiddenSize / numHeads)");
  bounded(l.hiddenSize, kMaxSize, "llm.hiddenSize");
  bounded(l.intermediateSize, kMaxSize, "llm.intermediateSize");
  bounded(l.numLayers, kMaxLayers, "llm.numLayers");
  bounded(l.headDim, kMaxHeadDim, "llm.headDim");
  bounded(l.numHeads * l.headDim, kMaxSize, "llm.numHeads × headDim");
  bounded(l.vocabSize, kMaxSize, "llm.vocabSize");
  bounded(l.maxPositionEmbeddings, kMaxSize, "llm.maxPositionEmbeddings");
  bounded(imageContextTokenId, kMaxSize, "imageContextTokenId");
}

}  // namespace ivl
