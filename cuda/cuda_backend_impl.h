// CudaBackend's state, shared by cuda_backend.cu (memory, dense ops) and
// cuda_backend_attention.cu. CUDA headers are fine here: only .cu files include it.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <array>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "check.h"
#include "cuda_alloc.h"
#include "cuda_backend.h"
#include "gemm_bf16.h"
#include "gemm_w8a16.h"
#include "quantize_int8.h"

namespace ivl::cuda {

using bf16 = __nv_bfloat16;

// Throws Internal "cuda backend: <what>" unless ok: a graph/caller bug, like the CPU
// backend's checks.
inline void need(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::Internal, "cuda backend: " + what);
}
inline void needDType(const Tensor& t, DType dt, const char* what) {
  need(t.defined() && t.dtype() == dt, std::string(what) + " must be " + dtypeName(dt) +
                                           (t.defined() ? std::string(", got ") + dtypeName(t.dtype()) : ""));
}
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Pinned host slots for small per-op uploads (token ids, row lists, KV metadata): a copy
// from pageable memory would synchronize the stream each time. A slot is reused once the
// copy that last read it has completed (its event).
class HostStaging {
 public:
  static constexpr int kSlots = 8;
  HostStaging() = default;
  ~HostStaging();
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;
  // Copies bytes from host src into dst (device) on stream, through a pinned slot.
  void upload(void* dst, const void* src, size_t bytes, cudaStream_t stream);

 private:
  struct Slot {
    void* host = nullptr;
    size_t capacity = 0;
    cudaEvent_t done = nullptr;
  };
  std::array<Slot, kSlots> slots_{};
  int next_ = 0;
};

// The last bytes a PackedUpload sent from one call site, still on the device. Every decoder
// layer of a step sends the same batch metadata (slots, page tables); with a cache the
// first layer uploads it and the others reuse the block. The block is never rewritten:
// new bytes get a new block, and the old one returns to the allocator when its last user
// (stream-ordered) lets go.
struct UploadCache {
  std::vector<char> host;
  std::shared_ptr<ScratchBlock> block;
};

// Several host arrays uploaded in one copy into one scratch block, each 16-byte aligned.
class PackedUpload {
 public:
  struct Part {
    const void* data;
    size_t bytes;
  };
  PackedUpload(CachingAllocator& alloc, HostStaging& staging, cudaStream_t stream, std::initializer_list<Part> parts,
               UploadCache* cache = nullptr);
  template <typename T>
  T* at(size_t i) const { return reinterpret_cast<T*>(block_->as<char>() + offsets_.at(i)); }

 private:
  std::shared_ptr<ScratchBlock> block_;
  std::vector<size_t> offsets_;
};

// Page-locked host memory, grown on demand and reused (downloadStaging): a device-to-host
// copy into it runs at full link speed, one into pageable memory is staged by the driver.
struct PinnedHost {
  void* ptr = nullptr;
  size_t bytes = 0;
  PinnedHost() = default;
  PinnedHost(const PinnedHost&) = delete;
  PinnedHost& operator=(const PinnedHost&) = delete;
  ~PinnedHost() {
    if (ptr) cudaFreeHost(ptr);
  }
};

struct CudaBackend::Impl {
  explicit Impl(const CudaBackendOptions& o);
  ~Impl();

  // Runs one op: refuses when poisoned, makes the device current, and after a CUDA error
  // checks whether the context is now unusable (a sticky error fails the next stream
  // synchronize too) and poisons the backend if so.
  template <class F>
  decltype(auto) op(F&& f) {
    if (poisoned) {
      throw Error(ErrorCode::Cuda, "the CUDA backend on device " + std::to_string(device) +
                                       " is unusable after an earlier CUDA error (" + poisonReason +
                                       "); dispose of the model and load it again");
    }
    try {
      makeCurrent();
      if (ctx->allocator.faults().shouldFail(FaultKind::DeviceError)) {
        // as after a sticky error (noteCudaError below keeps it): the test of "a CUDA error
        // poisons only that model" without breaking the process's real context
        poisoned = true;
        poisonReason = "cudaErrorLaunchFailure injected by the fault hook";
        throwCuda(cudaErrorLaunchFailure, "kernel launch (injected by the fault hook)", __FILE__, __LINE__);
      }
      return f();
    } catch (const Error& e) {
      if (e.code() == ErrorCode::Cuda) noteCudaError(e.what());
      throw;
    }
  }
  void makeCurrent();
  void noteCudaError(const std::string& what);

  Tensor newTensor(DType dtype, const Shape& shape, bool persistent);
  Tensor upload(const void* data, DType hostDType, const Shape& shape, WeightUse use);
  // n host elements of srcType -> dst as dstType (BF16 or F32), converted on the device.
  void hostToDevice(void* dst, DType dstType, const void* src, DType srcType, int64_t n);

  // ---- W8A16 (cuda_backend_int8.cu) ----
  // An I8 [n, k] weight in the packed layout with its scales, uninitialised.
  Tensor newInt8(int64_t n, int64_t k, WeightUse use);
  // Quantizes `rows` host rows into w's rows [row0, row0 + rows) (row0 on a 16-row tile).
  void quantizeRows(const Tensor& w, int64_t row0, const void* host, DType hostDType, int64_t rows);
  // The GEMM's descriptor of an I8 weight or row slice of one.
  W8A16Weight int8View(const Tensor& w);
  void matmulInt8(const Tensor& y, const Tensor& x, const Tensor& w, const bf16* bias);
  // The decode path's split-K workspace, grown to `bytes` (zeroed when it grows).
  std::pair<void*, size_t> int8DecodeWorkspace(size_t bytes);
  // BF16 copy of an F32 bias [n] for the epilogue: the mirror of a vector weight when there
  // is one, else converted into `tmp`.
  const bf16* biasBf16(const Tensor& bias, ScratchBlock& tmp);
  template <typename T>
  PackedUpload uploadOne(const std::vector<T>& v, UploadCache* cache = nullptr) {
    return PackedUpload(ctx->allocator, staging, stream, {{v.data(), v.size() * sizeof(T)}}, cache);
  }

  // Vector weights' BF16 mirrors: F32 data start -> (F32 bytes, mirror). Guarded by
  // mirrorMu: buffers unregister from whatever thread releases them.
  struct Mirror {
    size_t f32Bytes;
    const bf16* data;
  };
  std::shared_ptr<std::mutex> mirrorMu = std::make_shared<std::mutex>();
  std::shared_ptr<std::map<uintptr_t, Mirror>> mirrors = std::make_shared<std::map<uintptr_t, Mirror>>();

  CudaBackendOptions options;
  int device = 0;
  int numSms = 0;
  std::string description;  // describe()
  cudaStream_t stream = nullptr;
  std::shared_ptr<DeviceContext> ctx;
  HostStaging staging;
  PinnedHost downloadHost;  // downloadStaging (cuda/sampling.cu)
  ScratchBlock gemmWorkspace;
  std::unique_ptr<GemmBf16> gemm;
  ScratchBlock decodeWorkspace;  // grow-only, for pagedDecode's split-K partials
  bool decodeCountersArmed = false;  // its fused-merge counters are zero (last split call was fused)
  ScratchBlock int8Workspace;    // grow-only, zeroed split-K counters + partials of the W8A16 decode GEMM
  UploadCache slotsUpload;       // kvWrite / qkvRopeKvWrite slots
  UploadCache pagedMetaUpload;   // pagedAttention's CSR metadata
  bool genericAttention = false;
  // The fused ViT kernels (addScaledNorm, qkvAttention in place); INTERNVL_CUDA_FUSED_VIT=0
  // runs the interface's composed defaults instead (the fused kernels' oracle on the GPU).
  bool fusedVit = true;
  // Decode attention ropes q and the new key itself (qkvRopeAttention); INTERNVL_CUDA_ATTN_ROPE=0
  // composes qkvRopeKvWrite and pagedAttention instead.
  bool ropeInAttention = true;
  // INTERNVL_CUDA_W8A16_SILU=0: int8 decode rows run the stacked gate/up GEMV and then
  // siluMulHalves, instead of the activation in the GEMV's epilogue (matmulSiluMulHalves).
  bool siluInGemv = true;
  // INTERNVL_CUDA_W8A16_NORMS=0: int8 decode rows run each residual add, norm and projection as
  // GEMV, addRmsNorm and GEMV, instead of deferring the norm into the GEMVs (matmulAddRmsNorm:
  // the residual GEMV writes x ⊙ g and the rows' sums of squares, the next applies 1/rms).
  bool normsInGemv = true;
  ScratchBlock normSquares;  // the deferred norm's per-block sums of squares (W8A16RmsRows)
  W8A16RmsRows pendingNorm;  // what the last deferring matmulAddRmsNorm left for the next GEMV
  bool defersTo(const Tensor* reader, int64_t rows) const;  // (cuda_backend_int8.cu)
  W8A16RmsRows normRows(double eps);                        // normSquares, grown once
  bool poisoned = false;
  std::string poisonReason;
  AttentionPath lastAttention = AttentionPath::None;
};

}  // namespace ivl::cuda
