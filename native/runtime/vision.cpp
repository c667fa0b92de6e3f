#include "runtime/vision.h"

#include <algorithm>
#include <cmath>

namespace ivl {

Tensor VisionEncoder::vit(const Tensor& pixels, const std::atomic<bool>* cancel) {
  const VisionSpec& v = spec_.vision;
  const int64_t C = v.hiddenSize, I = v.intermediateSize, p = v.patchSize, G = spec_.patchGrid();
  const int64_t N = 1 + G * G;  // tokens per tile (CLS + patches)
  const int64_t T = pixels.dim(0);

  // Patch embedding: Conv2d(k = stride = p) as a matmul over flattened patches.
  Tensor patches = act({T * G * G, 3 * p * p});  // [T·G², 3·p·p]
  be_.patchify(patches, pixels, p);
  Tensor pe = act({T * G * G, C});  // [T·G², C]
  be_.matmul(pe, patches, w_.patchW, &w_.patchB);
  Tensor x = act({T, N, C});  // [T, 1+G², C] residual stream
  be_.vitEmbed(x, pe, w_.cls, w_.pos);
  patches = Tensor();
  pe = Tensor();

  Tensor a = act({T * N, C});        // normed input
  Tensor qkv = act({T * N, 3 * C});  // [q | k | v] rows of one matmul
  Tensor o = act({T * N, C});        // attention output
  Tensor pr = act({T * N, C});       // projection / MLP output
  Tensor f = act({T * N, I});        // MLP hidden
  const Tensor xr = x.view({T * N, C});
  const double scale = 1.0 / std::sqrt(double(C / v.numHeads));
  const bool layerNorm = v.norm == VitNorm::LayerNorm;

  // Each residual add (with its layer scale) runs fused with the norm that follows it: the
  // attention block's with norm2, the MLP block's with the next layer's norm1. q, k and v come
  // from one matmul over the stacked attn.qkv weight, and the attention reads them (with the
  // qk normalization of the 6B ViT) from those rows.
  if (w_.layers.empty()) return x;
  const VitLayerWeights& first = w_.layers.front();
  if (layerNorm) be_.layerNorm(a, xr, first.norm1W, first.norm1B, v.eps);
  else be_.rmsNorm(a, xr, first.norm1W, v.eps);
  for (size_t i = 0; i < w_.layers.size(); ++i) {
    const VitLayerWeights& L = w_.layers[i];
    checkCancel(cancel);
    // x += ls1 ⊙ proj(attn(q, k, v)),  a = norm2(x)
    be_.matmul(qkv, a, L.wqkv, L.bqkv ? &L.bqkv : nullptr);
    be_.qkvAttention(o, qkv, L.qNormW, L.kNormW, v.eps, T, v.numHeads, scale);
    be_.matmul(pr, o, L.proj, &L.projB);
    be_.addScaledNorm(a, xr, pr, L.ls1, L.norm2W, L.norm2B, layerNorm, v.eps);
    // x += ls2 ⊙ fc2(gelu(fc1(a))),  a = the next layer's norm1(x)
    be_.matmul(f, a, L.fc1, &L.fc1B);
    be_.gelu(f, f);
    be_.matmul(pr, f, L.fc2, &L.fc2B);
    if (i + 1 < w_.layers.size()) {
      const VitLayerWeights& next = w_.layers[i + 1];
      be_.addScaledNorm(a, xr, pr, L.ls2, next.norm1W, next.norm1B, layerNorm, v.eps);
    } else {
      be_.addScaled(xr, pr, L.ls2);
    }
  }
  return x;
}

Tensor VisionEncoder::project(const Tensor& vitOut) {
  const int64_t T = vitOut.dim(0), C = spec_.vision.hiddenSize, G = spec_.patchGrid(), s = spec_.shuffleScale();
  const int64_t n = spec_.numImageToken(), P = s * s * C, H = spec_.llm.hiddenSize;
  Tensor shuffled = act({T, n, P});  // [T, (G/s)², s²C]
  be_.pixelShuffle(shuffled, vitOut, G, s);
  Tensor rows = shuffled.view({T * n, P});
  be_.layerNorm(rows, rows, w_.lnW, w_.lnB, 1e-5);
  Tensor h = act({T * n, H});  // [T·n, H]
  be_.matmul(h, rows, w_.fc1, &w_.fc1B);
  be_.gelu(h, h);
  Tensor out = act({T * n, H});  // [T·n, H]
  be_.matmul(out, h, w_.fc2, &w_.fc2B);
  return out;
}

Tensor VisionEncoder::encode(const float* pixels, int64_t tiles, const std::atomic<bool>* cancel) {
  const int64_t S = spec_.tileSize, n = spec_.numImageToken(), H = spec_.llm.hiddenSize;
  // Tiles go through the ViT together, kTilesPerPass at a time: every GEMM sees all of
  // their tokens (one pass per tile left a 300M ViT at 10% of the GPU's peak), while
  // activations stay bounded (~65 MB per 6B-ViT tile in bf16).
  constexpr int64_t kTilesPerPass = 16;
  if (tiles <= kTilesPerPass) {
    Tensor px = be_.uploadF32(pixels, {tiles, 3, S, S});
    return project(vit(px, cancel));  // [tiles·n, H]
  }
  Tensor out = act({tiles * n, H});  // [tiles·n, H]
  std::vector<int64_t> rows;
  for (int64_t t0 = 0; t0 < tiles; t0 += kTilesPerPass) {
    const int64_t cnt = std::min(kTilesPerPass, tiles - t0);
    Tensor px = be_.uploadF32(pixels + t0 * 3 * S * S, {cnt, 3, S, S});
    Tensor emb = project(vit(px, cancel));  // [cnt·n, H]
    rows.resize(size_t(cnt * n));
    for (int64_t i = 0; i < cnt * n; ++i) rows[size_t(i)] = t0 * n + i;
    be_.scatterRows(out, rows, emb);
  }
  return out;
}

}  // namespace ivl
