// ivl::Backend on one CUDA GPU. Plain C++ (no CUDA headers): native/ code includes it
// under #ifdef INTERNVL_WITH_CUDA and constructs the backend through makeCudaBackend().
//
//   activations   BF16 on the device; fp32 accumulation, softmax and norm statistics
//   weights       matrices (and embedding tables) BF16 (F16/F32 checkpoints converted at
//                 upload), or int8 in the W8A16 packed layout when asked (cuda_backend_int8.cu);
//                 q/k/v and gate/up stacked into one matrix each (stackedWeight); vectors (norms, biases, layer scales, class/position embeddings)
//                 F32, each with a BF16 mirror for cuBLASLt's bias epilogue
//   stream        one per backend; every op is queued on it, none synchronizes except
//                 downloadF32 / synchronize()
//   memory        a caching allocator (size-bucketed free lists): no cudaMalloc per op in
//                 steady state; ERR_OOM names the request and the device's free memory
//   matmul        cuBLASLt, bf16 in/out, fp32 compute, BIAS epilogue, heuristic cached per shape
//   attention     the tuned kernels of cuda/paged_attention.h for head_dim 64/96/128
//                 (denseAttention for the ViT, pagedPrefill / pagedDecode for the decoder),
//                 a generic fp32 online-softmax kernel for every other case
//   errors        ivl::Error; CUDA failures are ERR_CUDA (cuBLAS ones name the status); after
//                 a sticky error (illegal address, ...) the backend is poisoned: every later
//                 call throws ERR_CUDA at once
//
// Not thread-safe: one engine thread drives a backend. Tensors may be released from any
// thread, and may outlive the backend (their memory goes back when the last one dies).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/backend.h"

namespace ivl::cuda {

struct CudaBackendOptions {
  int device = 0;
  size_t gemmWorkspaceBytes = size_t(32) << 20;  // cuBLASLt workspace
  // Route every attention call to the generic kernel (parity checks, debugging). Also set
  // by the environment variable INTERNVL_CUDA_GENERIC_ATTENTION=1.
  bool genericAttention = false;
};

struct CudaMemoryStats {
  size_t inUseBytes = 0;       // live tensors and scratch, as reserved
  size_t cachedBytes = 0;      // free blocks kept for reuse
  size_t weightBytes = 0;      // live weights (part of inUseBytes)
  size_t peakInUseBytes = 0;
  uint64_t deviceMallocs = 0;  // cudaMalloc calls so far
  uint64_t cacheHits = 0;      // allocations served from the cache
};

// Which attention implementation the last attention / pagedAttention call used (tests).
enum class AttentionPath { None, Dense, PagedPrefill, PagedDecode, GenericDense, GenericPaged };
const char* attentionPathName(AttentionPath p);

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& options = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  // "cuda: <GPU name> (device N, sm_XY, M SMs), bf16 activations, cuBLASLt"
  std::string describe() const override;
  DType activationDType() const override { return DType::BF16; }
  bool supportsInt8() const override { return true; }
  bool tunesMatmulShapes() const override { return true; }
  int64_t matmulShapesPlanned() const override;
  bool deviceMemory(DeviceMemory& out) const override;
  void releaseCache() override { emptyCache(); }
  // The allocator's injector (cuda/cuda_alloc.h): "oom-after=N" fails an allocation with
  // ERR_OOM; "error-after=N" fails an op with ERR_CUDA and poisons this backend as a sticky
  // error would, leaving the real CUDA context (and other models) intact.
  FaultInjector* faultInjector() override;
  // From another CudaBackend: a device-to-device (peer) copy; otherwise through the host.
  Tensor copyFrom(const Tensor& src, Backend& from, bool settled = false) override;

  Tensor alloc(DType dtype, const Shape& shape) override;
  Tensor weight(const StoredTensor& src, WeightUse use) override;
  Tensor weightFromHost(const void* data, DType hostDType, const Shape& shape, WeightUse use) override;
  Tensor stackedWeight(const std::vector<const StoredTensor*>& parts, WeightUse use) override;
  Tensor uploadF32(const float* data, const Shape& shape) override;
  void downloadF32(const Tensor& t, float* out) override;
  // Page-locked (cuda/sampling.cu).
  float* downloadStaging(size_t floats) override;
  // One block per row over the BF16 logits; the penalized ids uploaded (cuda/sampling.cu).
  void greedyTokens(const Tensor& logits, const std::vector<GreedyRow>& rows, int32_t* out) override;

  void matmul(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) override;
  void layerNorm(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, double eps) override;
  void rmsNorm(const Tensor& y, const Tensor& x, const Tensor& w, double eps) override;
  void addRmsNorm(const Tensor& y, const Tensor& x, const Tensor& r, const Tensor& w, double eps) override;
  void gelu(const Tensor& y, const Tensor& x) override;
  void siluMul(const Tensor& y, const Tensor& gate, const Tensor& up) override;
  void siluMulHalves(const Tensor& y, const Tensor& gu) override;
  void matmulSiluMulHalves(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& gu) override;
  bool rmsNormMayDefer(const Tensor& a, const Tensor& x, const Tensor& normW, double eps,
                       const Tensor* reader) override;
  bool matmulAddRmsNorm(const Tensor& x, const Tensor& a, const Tensor& r, const Tensor& h, const Tensor& w,
                        const Tensor* bias, const Tensor& normW, double eps, const Tensor* reader) override;
  void rmsNormedMatmul(const Tensor& y, const Tensor& a, const Tensor& w, const Tensor* bias, bool deferred) override;
  void rmsNormedMatmulSiluMulHalves(const Tensor& y, const Tensor& a, const Tensor& w, const Tensor& gu,
                                    bool deferred) override;
  void matmulAdd(const Tensor& x, const Tensor& r, const Tensor& a, const Tensor& w, const Tensor* bias) override;
  void add(const Tensor& y, const Tensor& a, const Tensor& b) override;
  void addScaled(const Tensor& y, const Tensor& x, const Tensor& s) override;
  void addScaledNorm(const Tensor& y, const Tensor& x, const Tensor& r, const Tensor& s, const Tensor& w,
                     const Tensor& b, bool layerNorm, double eps) override;

  void embedding(const Tensor& y, const Tensor& table, const std::vector<int32_t>& ids) override;
  void scatterRows(const Tensor& dst, const std::vector<int64_t>& rows, const Tensor& src) override;
  void gatherRows(const Tensor& dst, const Tensor& src, const std::vector<int64_t>& rows) override;
  void splitColumns(const std::vector<Tensor>& dsts, const Tensor& src) override;

  void rope(const Tensor& x, int64_t nHeads, const Tensor& cos, const Tensor& sin) override;
  void attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, int64_t groups, int64_t nHeads,
                 double scale) override;
  void qkvAttention(const Tensor& out, const Tensor& qkv, const Tensor& qNorm, const Tensor& kNorm, double eps,
                    int64_t groups, int64_t nHeads, double scale) override;
  void kvWrite(const KvLayer& layer, const Tensor& k, const Tensor& v, const PagedBatch& batch) override;
  void qkvRopeKvWrite(const Tensor& q, const KvLayer& layer, const Tensor& qkv, int64_t nHeads, int64_t nKvHeads,
                      const Tensor& cos, const Tensor& sin, const PagedBatch& batch) override;
  void pagedAttention(const Tensor& out, const Tensor& q, const KvLayer& layer, const PagedBatch& batch,
                      int64_t nHeads, int64_t nKvHeads, double scale) override;
  void qkvRopeAttention(const Tensor& out, const Tensor& q, const KvLayer& layer, const Tensor& qkv, int64_t nHeads,
                        int64_t nKvHeads, const Tensor& cos, const Tensor& sin, const PagedBatch& batch,
                        double scale) override;

  void patchify(const Tensor& out, const Tensor& pixels, int64_t patch) override;
  void vitEmbed(const Tensor& out, const Tensor& patches, const Tensor& cls, const Tensor& pos) override;
  void pixelShuffle(const Tensor& out, const Tensor& x, int64_t grid, int64_t scale) override;

  // ---- beyond the interface ------------------------------------------------------
  int device() const;
  // Waits for every queued op; throws ERR_CUDA if one failed.
  void synchronize() override;
  CudaMemoryStats memoryStats() const;
  // Gives the allocator's cached blocks back to the driver, and the workspaces that only grow
  // (split-K partials, the last uploads) first: they are made again on demand, and in-use
  // memory returns to what the load left.
  void emptyCache();
  bool poisoned() const;
  AttentionPath lastAttentionPath() const;
  // Launches a kernel that writes to an invalid address and synchronizes: the call throws
  // ERR_CUDA and the backend (and, CUDA being what it is, the process's context) is poisoned.
  void injectFaultForTesting();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The integration point for native/: a CUDA backend on `device`.
std::unique_ptr<Backend> makeCudaBackend(int device);

}  // namespace ivl::cuda
