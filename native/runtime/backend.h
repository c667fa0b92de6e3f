// The operations the model graph is written against. The CPU backend (native/cpu)
// implements them plainly in fp32; a CUDA backend implements the same interface, so
// vision.cpp / decoder.cpp are written once.
//
// Conventions:
//   - Every tensor is contiguous and row-major; "[M, C]" means rows() == M, cols() == C
//     (leading dimensions flatten into M).
//   - Outputs are allocated by the caller (alloc) and passed first; unless an op says
//     "may alias", outputs must not overlap inputs.
//   - Activations use activationDType(); matmul weights are F32, BF16 or I8 (quantized, with
//     scales attached: WeightUse::Int8*); small weight vectors (norms, biases, layer scales) are F32.
//   - Host-side index arrays (token ids, row lists, KV metadata) are passed as
//     std::vector; a device backend uploads them itself.
//   - Failures throw ivl::Error; nothing exits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/greedy.h"
#include "runtime/paged_kv.h"
#include "runtime/safetensors.h"
#include "runtime/tensor.h"

namespace ivl {

// How a checkpoint tensor will be used, which decides the dtype it is kept in.
enum class WeightUse {
  Matrix,  // matmul weight or embedding table: BF16 kept as BF16, F32 as F32, F16 widened to F32
  Vector,  // norm weight, bias, layer scale, class/position embedding: always F32
  // Matmul weight quantized at load (W8A16, runtime/quantize.h): an I8 [N, K] tensor (N = the
  // source's first dimension, K = the rest) with fp32 scales attached (Tensor::scales()),
  // computed from the fp32 values of the source (bf16 widened exactly). matmul() multiplies
  // with W' = q · scale in fp32. Only for matmul weights: embedding() takes F32/BF16 tables.
  Int8PerChannel,   // one scale per output row
  Int8PerGroup128,  // one scale per output row and 128 input columns (the last group may be shorter)
};

inline bool isInt8Use(WeightUse u) { return u == WeightUse::Int8PerChannel || u == WeightUse::Int8PerGroup128; }

// Device memory of a backend that has its own (CUDA), as its allocator accounts it.
struct DeviceMemory {
  size_t weightBytes = 0;  // live weights
  size_t inUseBytes = 0;   // live tensors + scratch (weights included), as reserved
  size_t peakBytes = 0;    // the most inUseBytes has been since the backend was made
  size_t cachedBytes = 0;  // freed blocks kept for reuse (reserved from the device, not in use)
};

class FaultInjector;  // runtime/fault_injection.h

class Backend {
 public:
  virtual ~Backend() = default;

  virtual const char* name() const = 0;
  // One line for logs and info(): kernels, threads, device.
  virtual std::string describe() const { return name(); }
  virtual DType activationDType() const = 0;
  // Whether weight() / weightFromHost() take WeightUse::Int8* and matmul() takes I8 weights.
  virtual bool supportsInt8() const { return false; }
  // Whether matmul() picks its kernel per shape the first time it meets that shape (the CUDA
  // backend's cuBLASLt plans, timed among candidates for skinny products): then the engine
  // runs the decode shapes once at load (Engine::warmMatmulShapes) instead of in live steps.
  virtual bool tunesMatmulShapes() const { return false; }
  // Tests only: how many matmul shapes it has picked kernels for so far (0 when it does not).
  virtual int64_t matmulShapesPlanned() const { return 0; }
  // Fills `out` and returns true when the backend has device memory to report. Thread-safe.
  virtual bool deviceMemory(DeviceMemory& out) const {
    (void)out;
    return false;
  }
  // Gives cached free blocks back (after load: the conversion scratch is not needed again).
  virtual void releaseCache() {}
  // Tests only: what makes this backend's allocations (and device ops) fail on demand
  // (runtime/fault_injection.h); null for a backend without one.
  virtual FaultInjector* faultInjector() { return nullptr; }
  // Waits until every op queued so far has finished (benchmarks time device work with it);
  // a backend that runs ops synchronously has nothing to wait for.
  virtual void synchronize() {}
  // A copy on this backend of src, an activation tensor of `from` (the next device of a model
  // split across devices). Default: through host memory as F32, arriving in this backend's
  // activation dtype (a CUDA destination rounds F32 data to BF16, as all its activations are);
  // a backend with a direct path (CUDA peer copy) overrides it. settled: the caller knows every
  // op of `from` that writes src has finished (it synchronized `from` itself), so the copy need
  // not wait for work `from` is doing now for someone else (the vision thread's next batch).
  virtual Tensor copyFrom(const Tensor& src, Backend& from, bool settled = false) {
    (void)settled;
    std::vector<float> host(size_t(src.numel()));
    from.downloadF32(src, host.data());
    return uploadF32(host.data(), src.shape());
  }

  // ---- memory ---------------------------------------------------------------
  // Uninitialised tensor.
  virtual Tensor alloc(DType dtype, const Shape& shape) = 0;
  // A checkpoint tensor in the form `use` asks for (may alias the mapped file on CPU).
  virtual Tensor weight(const StoredTensor& src, WeightUse use) = 0;
  // A tensor made from host data (hostDType F32 or BF16) in the form `use` asks for.
  virtual Tensor weightFromHost(const void* data, DType hostDType, const Shape& shape, WeightUse use) = 0;
  // One matmul weight [ΣNᵢ, K] holding the rows of several checkpoint matrices [Nᵢ, K] in order
  // (q/k/v, gate/up), so one GEMM reads them in one pass. A backend that gains nothing from it
  // returns an undefined tensor and the graph keeps the parts apart.
  virtual Tensor stackedWeight(const std::vector<const StoredTensor*>& parts, WeightUse use) {
    (void)parts;
    (void)use;
    return {};
  }
  // Host f32 [numel(shape)] -> new activation tensor.
  virtual Tensor uploadF32(const float* data, const Shape& shape) = 0;
  // Activation tensor -> host f32 [t.numel()].
  virtual void downloadF32(const Tensor& t, float* out) = 0;

  // Rows rows[i] of t[R, C] -> host f32 out[i·C, (i + 1)·C). Default: gatherRows + downloadF32.
  virtual void downloadRowsF32(const Tensor& t, const std::vector<int64_t>& rows, float* out) {
    const int64_t R = t.rows(), C = R > 0 ? t.numel() / R : 0, n = int64_t(rows.size());
    bool all = n == R;  // every row in order: no gather
    for (int64_t i = 0; i < n; ++i) {
      require(rows[size_t(i)] >= 0 && rows[size_t(i)] < R, ErrorCode::Internal, "downloadRowsF32: row out of range");
      all = all && rows[size_t(i)] == i;
    }
    if (n == 0 || C == 0) return;
    if (all) return downloadF32(t, out);
    Tensor picked = alloc(t.dtype(), {n, C});
    gatherRows(picked, t, rows);
    downloadF32(picked, out);
  }
  // Host memory for a download of `floats` floats that the backend copies into fastest (CUDA:
  // page-locked), owned by the backend, grown as needed and reused: valid until the next call
  // on this backend. nullptr (the default): download into ordinary memory.
  virtual float* downloadStaging(size_t floats) {
    (void)floats;
    return nullptr;
  }

  // ---- sampling -------------------------------------------------------------
  // A greedy row of a decode step's logits and the repetition penalty to apply first.
  struct GreedyRow {
    int64_t row = 0;
    double penalty = 1.0;                           // SamplingParams::repetitionPenalty
    const std::vector<int32_t>* history = nullptr;  // its generated ids (may repeat; may be null)
  };
  // out[i] = the greedy token of logits[R, V] row rows[i].row read as fp32: the repetition
  // penalty (runtime/sampler.h applyRepetitionPenalty: each distinct history id in [0, V),
  // s < 0 ? s·p : s / p with p as float), then the first index of the maximum as
  // std::max_element gives it (argmaxFirst). Exactly what the host sampler picks from the
  // downloaded row. Default: downloads the rows and does that here.
  virtual void greedyTokens(const Tensor& logits, const std::vector<GreedyRow>& rows, int32_t* out) {
    const int64_t R = logits.rows(), V = R > 0 ? logits.numel() / R : 0;
    if (rows.empty()) return;
    std::vector<int64_t> which;
    for (const GreedyRow& g : rows) which.push_back(g.row);
    std::vector<float> scores(rows.size() * size_t(V));  // [n, V]
    downloadRowsF32(logits, which, scores.data());
    for (size_t i = 0; i < rows.size(); ++i) {
      float* s = scores.data() + i * size_t(V);
      if (rows[i].history) applyRepetitionPenalty(s, V, rows[i].penalty, *rows[i].history);
      out[i] = argmaxFirst(s, V);
    }
  }

  // ---- dense math -----------------------------------------------------------
  // y[M, N] = x[M, K] · w[N, K]ᵀ (+ bias[N]); w F32, BF16 or I8 (then w = q · scale, fp32 math)
  virtual void matmul(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) = 0;
  // y[M, C] = (x - mean(x)) / sqrt(var(x) + eps) * w[C] + b[C]   (per row; y may alias x)
  virtual void layerNorm(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, double eps) = 0;
  // y[M, C] = w[C] * x / sqrt(mean(x²) + eps)                    (per row; y may alias x)
  virtual void rmsNorm(const Tensor& y, const Tensor& x, const Tensor& w, double eps) = 0;
  // x = x + r, then y = rmsNorm(x) as above (the residual add and the next norm; y must not
  // alias x or r). A backend may fuse the two.
  virtual void addRmsNorm(const Tensor& y, const Tensor& x, const Tensor& r, const Tensor& w, double eps) {
    add(x, x, r);
    rmsNorm(y, x, w, eps);
  }
  // a = rmsNorm(x; normW, eps) as rmsNorm, where `reader` (or null) is the weight that reads a
  // through the rmsNormed* forms below. Returns whether a was left deferred: holding
  // bf16(x ⊙ normW), each row's 1/rms still to apply, which only those forms read (deferred =
  // true); a backend that defers implements them. The CUDA backend defers for int8 decode rows.
  virtual bool rmsNormMayDefer(const Tensor& a, const Tensor& x, const Tensor& normW, double eps,
                               const Tensor* reader) {
    (void)reader;
    rmsNorm(a, x, normW, eps);
    return false;
  }
  // x += h · w[N, C]ᵀ (+ bias), then a = rmsNorm(x; normW, eps): a block's last projection, the
  // residual add and the next norm (r [M, N] scratch for the product), deferred as
  // rmsNormMayDefer (CUDA, int8 decode rows: gemmW8A16Residual, no norm kernel between the GEMVs).
  virtual bool matmulAddRmsNorm(const Tensor& x, const Tensor& a, const Tensor& r, const Tensor& h, const Tensor& w,
                                const Tensor* bias, const Tensor& normW, double eps, const Tensor* reader) {
    (void)reader;
    matmul(r, h, w, bias);
    addRmsNorm(a, x, r, normW, eps);
    return false;
  }
  // y = a · w[N, C]ᵀ (+ bias) for the normed rows a; deferred: a as matmulAddRmsNorm left it.
  virtual void rmsNormedMatmul(const Tensor& y, const Tensor& a, const Tensor& w, const Tensor* bias, bool deferred) {
    require(!deferred, ErrorCode::Internal, "rmsNormedMatmul: this backend does not defer norms");
    matmul(y, a, w, bias);
  }
  // y = siluMulHalves(a · w[2F, C]ᵀ) likewise (gu [M, 2F] scratch, as matmulSiluMulHalves).
  virtual void rmsNormedMatmulSiluMulHalves(const Tensor& y, const Tensor& a, const Tensor& w, const Tensor& gu,
                                            bool deferred) {
    require(!deferred, ErrorCode::Internal, "rmsNormedMatmulSiluMulHalves: this backend does not defer norms");
    matmulSiluMulHalves(y, a, w, gu);
  }
  // y = 0.5 x (1 + erf(x / √2)), elementwise (y may alias x)
  virtual void gelu(const Tensor& y, const Tensor& x) = 0;
  // y = silu(gate) ⊙ up = gate / (1 + e^-gate) ⊙ up, elementwise (y may alias gate)
  virtual void siluMul(const Tensor& y, const Tensor& gate, const Tensor& up) = 0;
  // y[M, F] = silu(gu[:, :F]) ⊙ gu[:, F:]   (the output of a stacked gate/up matmul gu[M, 2F])
  virtual void siluMulHalves(const Tensor& y, const Tensor& gu) = 0;
  // y[M, F] = siluMulHalves(x · w[2F, C]ᵀ): a stacked [gate | up] projection and the MLP's
  // activation. gu [M, 2F] is scratch for the projection, which this form writes. The seam where
  // a backend may form the activation in the projection's epilogue (and leave gu untouched): the
  // CUDA backend does for int8 decode rows (gemmW8A16SiluMul).
  virtual void matmulSiluMulHalves(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& gu) {
    matmul(gu, x, w, nullptr);
    siluMulHalves(y, gu);
  }
  // x[M, N] += a[M, C] · w[N, C]ᵀ (+ bias): a block's last projection and the residual add, where
  // no norm follows (a run of layers' end). r [M, N] is scratch for the product. CUDA adds in the
  // int8 decode GEMV's epilogue (gemmW8A16Residual, the composed ops' bits; r untouched).
  virtual void matmulAdd(const Tensor& x, const Tensor& r, const Tensor& a, const Tensor& w, const Tensor* bias) {
    matmul(r, a, w, bias);
    add(x, x, r);
  }
  // y = a + b, elementwise (y may alias a)
  virtual void add(const Tensor& y, const Tensor& a, const Tensor& b) = 0;
  // y[M, C] += x[M, C] ⊙ s[C]    (layer scale residual)
  virtual void addScaled(const Tensor& y, const Tensor& x, const Tensor& s) = 0;
  // x += r ⊙ s as addScaled, then y = the next block's norm of x: layerNorm with bias b when
  // `layerNorm`, else rmsNorm (b unused). The ViT's residual with layer scale and the norm that
  // follows it; y must not alias x or r. A backend may fuse the two.
  virtual void addScaledNorm(const Tensor& y, const Tensor& x, const Tensor& r, const Tensor& s, const Tensor& w,
                             const Tensor& b, bool layerNorm, double eps) {
    addScaled(x, r, s);
    if (layerNorm) this->layerNorm(y, x, w, b, eps);
    else rmsNorm(y, x, w, eps);
  }

  // ---- rows -----------------------------------------------------------------
  // y[T, H] = table[ids[t], :]   (table F32 or BF16)
  virtual void embedding(const Tensor& y, const Tensor& table, const std::vector<int32_t>& ids) = 0;
  // dst[rows[i], :] = src[i, :]   for i < rows.size()
  virtual void scatterRows(const Tensor& dst, const std::vector<int64_t>& rows, const Tensor& src) = 0;
  // dst[i, :] = src[rows[i], :]
  virtual void gatherRows(const Tensor& dst, const Tensor& src, const std::vector<int64_t>& rows) = 0;
  // Column blocks of src[M, ΣCᵢ] into dsts[i][M, Cᵢ], left to right (the q | k | v of a stacked matmul).
  virtual void splitColumns(const std::vector<Tensor>& dsts, const Tensor& src) = 0;

  // ---- attention ------------------------------------------------------------
  // In place on x[T, nHeads, D]: NeoX rotate-half with per-token tables cos/sin[T, D/2]:
  //   x'[i] = x[i] cos[i] - x[i + D/2] sin[i];  x'[i + D/2] = x[i + D/2] cos[i] + x[i] sin[i]
  virtual void rope(const Tensor& x, int64_t nHeads, const Tensor& cos, const Tensor& sin) = 0;
  // Non-causal attention within each of B groups of N tokens (ViT):
  //   q, k, v, out : [B·N, nHeads·D];  out = softmax(q·kᵀ·scale)·v per group and head
  virtual void attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, int64_t groups,
                         int64_t nHeads, double scale) = 0;
  // The same from the stacked rows of one qkv matmul, qkv : [B·N, 3C] = [q | k | v], C = nHeads·D;
  // when qNorm is defined (InternViT-6B's qk normalization), q and k are first RMSNormed over
  // their full width C with qNorm / kNorm. qkv may be overwritten. A backend may read q, k and
  // v in place and fuse the norms; the default splits them.
  virtual void qkvAttention(const Tensor& out, const Tensor& qkv, const Tensor& qNorm, const Tensor& kNorm, double eps,
                            int64_t groups, int64_t nHeads, double scale) {
    const int64_t rows = qkv.rows(), C = qkv.cols() / 3;
    Tensor q = alloc(qkv.dtype(), {rows, C}), k = alloc(qkv.dtype(), {rows, C}), v = alloc(qkv.dtype(), {rows, C});
    splitColumns({q, k, v}, qkv);
    if (qNorm.defined()) {
      rmsNorm(q, q, qNorm, eps);
      rmsNorm(k, k, kNorm, eps);
    }
    attention(out, q, k, v, groups, nHeads, scale);
  }
  // Writes new K/V rows into their pages: k, v : [T, numKvHeads·D] -> layer.k/v at batch.slots[t].
  virtual void kvWrite(const KvLayer& layer, const Tensor& k, const Tensor& v, const PagedBatch& batch) = 0;
  // After a stacked q/k/v matmul: q[T, nHeads·D] = rope(qkv[:, :nHeads·D]), and
  // rope(qkv[:, nHeads·D : +nKvHeads·D]) and qkv[:, (nHeads + nKvHeads)·D :] written to the
  // pages as kvWrite would. splitColumns + rope + rope + kvWrite; a backend may fuse them.
  virtual void qkvRopeKvWrite(const Tensor& q, const KvLayer& layer, const Tensor& qkv, int64_t nHeads,
                              int64_t nKvHeads, const Tensor& cos, const Tensor& sin, const PagedBatch& batch) {
    const int64_t kvCols = qkv.cols() - q.cols();
    Tensor k = alloc(q.dtype(), {q.rows(), kvCols / 2});
    Tensor v = alloc(q.dtype(), {q.rows(), kvCols / 2});
    splitColumns({q, k, v}, qkv);
    rope(q, nHeads, cos, sin);
    rope(k, nKvHeads, cos, sin);
    kvWrite(layer, k, v, batch);
  }
  // Causal attention over the paged cache (GQA: q head h reads kv head h / (nHeads / nKvHeads)):
  //   q, out : [T, nHeads·D]; keys/values come from the pages (kvWrite first).
  virtual void pagedAttention(const Tensor& out, const Tensor& q, const KvLayer& layer, const PagedBatch& batch,
                              int64_t nHeads, int64_t nKvHeads, double scale) = 0;
  // qkvRopeKvWrite, then pagedAttention(out, q, ...): from the stacked qkv rows to the attention
  // output. q [T, nHeads·D] is scratch for the roped queries, which this form writes. The seam
  // where a backend may rope inside attention (CUDA, decode steps: the rope is done by the
  // attention kernel and q is left untouched).
  virtual void qkvRopeAttention(const Tensor& out, const Tensor& q, const KvLayer& layer, const Tensor& qkv,
                                int64_t nHeads, int64_t nKvHeads, const Tensor& cos, const Tensor& sin,
                                const PagedBatch& batch, double scale) {
    qkvRopeKvWrite(q, layer, qkv, nHeads, nKvHeads, cos, sin, batch);
    pagedAttention(out, q, layer, batch, nHeads, nKvHeads, scale);
  }

  // ---- vision ---------------------------------------------------------------
  // Conv2d(k = stride = p) input as rows: out[T·G·G, 3·p·p] from pixels[T, 3, S, S], G = S / p,
  // row t·G² + r·G + c holds patch (r, c) of tile t, channel-major then (ky, kx) like the conv weight.
  virtual void patchify(const Tensor& out, const Tensor& pixels, int64_t patch) = 0;
  // out[T, 1 + G², C]: row 0 = cls + pos[0]; row 1 + i = patches[t·G² + i] + pos[1 + i]
  virtual void vitEmbed(const Tensor& out, const Tensor& patches, const Tensor& cls, const Tensor& pos) = 0;
  // Pixel shuffle v2 with integer scale s, dropping the CLS row:
  //   x[T, 1 + G², C] -> out[T, (G/s)², s²·C]; token r2·(G/s) + c2 is the concatenation over
  //   (j, k) in row-major order of grid cell (s·r2 + j, s·c2 + k).
  virtual void pixelShuffle(const Tensor& out, const Tensor& x, int64_t grid, int64_t scale) = 0;
};

}  // namespace ivl
