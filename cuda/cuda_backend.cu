// CudaBackend: memory, uploads/downloads, dense math and row ops. Attention lives in
// cuda_backend_attention.cu. Each op checks shapes and dtypes on the host (ivl::Error
// Internal, like the CPU backend; bad token ids are InvalidArg), uploads the host index
// arrays it gets, and queues its kernels on the backend's stream.
#include <algorithm>
#include <cstdlib>

#include "cuda_backend_impl.h"
#include "elementwise.h"
#include "env_switch.h"
#include "gemv_bf16.h"
#include "norm.h"
#include "qkv_rope_append.h"
#include "vit_ops.h"

namespace ivl::cuda {

const char* attentionPathName(AttentionPath p) {
  switch (p) {
    case AttentionPath::None: return "none";
    case AttentionPath::Dense: return "denseAttention";
    case AttentionPath::PagedPrefill: return "pagedPrefill";
    case AttentionPath::PagedDecode: return "pagedDecode";
    case AttentionPath::GenericDense: return "generic (dense)";
    case AttentionPath::GenericPaged: return "generic (paged)";
  }
  return "?";
}

// ---- host staging ------------------------------------------------------------------------

HostStaging::~HostStaging() {
  for (Slot& s : slots_) {
    if (s.done) {
      cudaEventSynchronize(s.done);
      cudaEventDestroy(s.done);
    }
    if (s.host) cudaFreeHost(s.host);
  }
  cudaGetLastError();
}

void HostStaging::upload(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  Slot& s = slots_[size_t(next_)];
  next_ = (next_ + 1) % kSlots;
  if (s.done) IVL_CUDA_CHECK(cudaEventSynchronize(s.done));  // the copy that last read it is done
  else IVL_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
  if (s.capacity < bytes) {
    if (s.host) IVL_CUDA_CHECK(cudaFreeHost(s.host));
    s.host = nullptr;
    s.capacity = 0;
    const size_t cap = std::max<size_t>(bytes, 64 << 10);
    IVL_CUDA_CHECK(cudaMallocHost(&s.host, cap));
    s.capacity = cap;
  }
  std::memcpy(s.host, src, bytes);
  IVL_CUDA_CHECK(cudaMemcpyAsync(dst, s.host, bytes, cudaMemcpyHostToDevice, stream));
  IVL_CUDA_CHECK(cudaEventRecord(s.done, stream));
}

PackedUpload::PackedUpload(CachingAllocator& alloc, HostStaging& staging, cudaStream_t stream,
                           std::initializer_list<Part> parts, UploadCache* cache) {
  size_t total = 0;
  for (const Part& p : parts) {
    offsets_.push_back(total);
    total += (p.bytes + 15) / 16 * 16;
  }
  if (total == 0) total = 16;  // every part still gets a valid (empty) address
  std::vector<char> host(total, 0);
  size_t i = 0;
  for (const Part& p : parts) {
    if (p.bytes) std::memcpy(host.data() + offsets_[i], p.data, p.bytes);
    ++i;
  }
  if (cache && cache->block && cache->host == host) {
    block_ = cache->block;
    return;
  }
  block_ = std::make_shared<ScratchBlock>(alloc, total);
  staging.upload(block_->get(), host.data(), total, stream);
  if (cache) {
    cache->host = std::move(host);
    cache->block = block_;
  }
}

// ---- buffers -------------------------------------------------------------------------------

namespace {

// A vector weight: F32 [n] then, 256-byte aligned, its BF16 mirror [n], in one block.
class MirroredBuffer final : public Buffer {
 public:
  MirroredBuffer(std::shared_ptr<DeviceContext> ctx, size_t f32Bytes, std::shared_ptr<std::mutex> mu,
                 std::shared_ptr<std::map<uintptr_t, CudaBackend::Impl::Mirror>> registry)
      : buf_(std::move(ctx), mirrorOffset(f32Bytes) + f32Bytes / 2, true),
        f32Bytes_(f32Bytes),
        mu_(std::move(mu)),
        registry_(std::move(registry)) {}
  ~MirroredBuffer() override {
    std::lock_guard<std::mutex> lock(*mu_);
    registry_->erase(reinterpret_cast<uintptr_t>(buf_.data()));
  }
  void* data() const override { return buf_.data(); }
  size_t bytes() const override { return f32Bytes_; }
  bf16* mirror() const { return reinterpret_cast<bf16*>(static_cast<char*>(buf_.data()) + mirrorOffset(f32Bytes_)); }
  void publish() {
    if (!buf_.data()) return;
    std::lock_guard<std::mutex> lock(*mu_);
    (*registry_)[reinterpret_cast<uintptr_t>(buf_.data())] = {f32Bytes_, mirror()};
  }
  static size_t mirrorOffset(size_t f32Bytes) { return (f32Bytes + 255) / 256 * 256; }

 private:
  DeviceBuffer buf_;
  size_t f32Bytes_;
  std::shared_ptr<std::mutex> mu_;
  std::shared_ptr<std::map<uintptr_t, CudaBackend::Impl::Mirror>> registry_;
};

__global__ void faultKernel(int* p) { *p = 1; }

}  // namespace

// ---- Impl ------------------------------------------------------------------------------------

CudaBackend::Impl::Impl(const CudaBackendOptions& o) : options(o), device(o.device) {
  int count = 0;
  IVL_CUDA_CHECK(cudaGetDeviceCount(&count));
  require(device >= 0 && device < count, ErrorCode::InvalidArg,
          "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(count) + " found)");
  IVL_CUDA_CHECK(cudaSetDevice(device));
  IVL_CUDA_CHECK(cudaDeviceGetAttribute(&numSms, cudaDevAttrMultiProcessorCount, device));
  {
    cudaDeviceProp prop{};
    IVL_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    description = std::string("cuda: ") + prop.name + " (device " + std::to_string(device) + ", sm_" +
                  std::to_string(prop.major) + std::to_string(prop.minor) + ", " + std::to_string(numSms) +
                  " SMs), bf16 activations, cuBLASLt";
  }
  IVL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  try {
    ctx = std::make_shared<DeviceContext>(device, stream);
  } catch (...) {
    cudaStreamDestroy(stream);
    throw;
  }
  genericAttention = o.genericAttention || envSwitch("INTERNVL_CUDA_GENERIC_ATTENTION", false);
  fusedVit = envSwitch("INTERNVL_CUDA_FUSED_VIT", true);
  ropeInAttention = envSwitch("INTERNVL_CUDA_ATTN_ROPE", true);
  siluInGemv = envSwitch("INTERNVL_CUDA_W8A16_SILU", true);
  normsInGemv = envSwitch("INTERNVL_CUDA_W8A16_NORMS", true);
  gemmWorkspace = ScratchBlock(ctx->allocator, o.gemmWorkspaceBytes);
  gemm = std::make_unique<GemmBf16>(stream, gemmWorkspace.get(), o.gemmWorkspaceBytes);
}

CudaBackend::Impl::~Impl() {
  int prev = -1;
  if (cudaGetDevice(&prev) == cudaSuccess && prev != device) cudaSetDevice(device);
  cudaStreamSynchronize(stream);
  cudaGetLastError();
  gemm.reset();
  decodeWorkspace.reset();
  int8Workspace.reset();
  slotsUpload.block.reset();
  pagedMetaUpload.block.reset();
  gemmWorkspace.reset();
  // staging's destructor waits for its copies; ctx (stream + allocator) goes with the
  // last buffer that still holds it.
}

void CudaBackend::Impl::makeCurrent() {
  int cur = -1;
  IVL_CUDA_CHECK(cudaGetDevice(&cur));
  if (cur != device) IVL_CUDA_CHECK(cudaSetDevice(device));
}

void CudaBackend::Impl::noteCudaError(const std::string& what) {
  // A non-sticky error (bad launch configuration, ...) leaves the stream usable; a sticky
  // one (illegal address, launch failure, ...) fails every later call, this one too.
  const cudaError_t s = cudaStreamSynchronize(stream);
  if (s != cudaSuccess) {
    poisoned = true;
    poisonReason = what;
  }
  cudaGetLastError();
}

Tensor CudaBackend::Impl::newTensor(DType dtype, const Shape& shape, bool persistent) {
  for (int64_t d : shape) need(d >= 0, "negative dimension in alloc " + shapeString(shape));
  const size_t bytes = size_t(shapeNumel(shape)) * dtypeSize(dtype);
  return Tensor(std::make_shared<DeviceBuffer>(ctx, bytes, persistent), dtype, shape);
}

Tensor CudaBackend::Impl::upload(const void* data, DType hostDType, const Shape& shape, WeightUse use) {
  need(hostDType == DType::F32 || hostDType == DType::BF16 || hostDType == DType::F16,
       std::string("weights must be F32, BF16 or F16, got ") + dtypeName(hostDType));
  const int64_t n = shapeNumel(shape);
  if (isInt8Use(use)) {
    need(!shape.empty(), "int8 weight of rank 0");
    Tensor t = newInt8(shape[0], shape[0] ? n / shape[0] : 0, use);
    quantizeRows(t, 0, data, hostDType, shape[0]);
    return t;
  }
  if (use == WeightUse::Matrix) {
    Tensor t = newTensor(DType::BF16, shape, true);
    hostToDevice(t.raw(), DType::BF16, data, hostDType, n);
    return t;
  }
  for (int64_t d : shape) need(d >= 0, "negative dimension in weight " + shapeString(shape));
  auto buf = std::make_shared<MirroredBuffer>(ctx, size_t(n) * 4, mirrorMu, mirrors);
  Tensor t(buf, DType::F32, shape);
  if (n == 0) return t;
  hostToDevice(t.raw(), DType::F32, data, hostDType, n);
  convertToBf16(buf->mirror(), t.raw(), DType::F32, n, stream);
  buf->publish();
  return t;
}

const bf16* CudaBackend::Impl::biasBf16(const Tensor& bias, ScratchBlock& tmp) {
  if (bias.dtype() == DType::BF16) return bias.ptr<bf16>();
  needDType(bias, DType::F32, "matmul: bias");
  const uintptr_t p = reinterpret_cast<uintptr_t>(bias.raw());
  {
    std::lock_guard<std::mutex> lock(*mirrorMu);
    auto it = mirrors->upper_bound(p);
    if (it != mirrors->begin()) {
      --it;
      const uintptr_t start = it->first;
      if (p + bias.nbytes() <= start + it->second.f32Bytes && (p - start) % 4 == 0) {
        return it->second.data + (p - start) / 4;
      }
    }
  }
  tmp = ScratchBlock(ctx->allocator, size_t(bias.numel()) * 2);
  convertToBf16(tmp.as<bf16>(), bias.raw(), DType::F32, bias.numel(), stream);
  return tmp.as<bf16>();
}

// ---- CudaBackend: memory ----------------------------------------------------------------------

CudaBackend::CudaBackend(const CudaBackendOptions& options) : impl_(std::make_unique<Impl>(options)) {}
CudaBackend::~CudaBackend() = default;

std::unique_ptr<Backend> makeCudaBackend(int device) {
  CudaBackendOptions o;
  o.device = device;
  return std::make_unique<CudaBackend>(o);
}

int CudaBackend::device() const { return impl_->device; }
std::string CudaBackend::describe() const {
  return impl_->description + (impl_->genericAttention ? ", generic attention" : "");
}
bool CudaBackend::poisoned() const { return impl_->poisoned; }
int64_t CudaBackend::matmulShapesPlanned() const { return int64_t(impl_->gemm->cachedPlans()); }
AttentionPath CudaBackend::lastAttentionPath() const { return impl_->lastAttention; }

void CudaBackend::synchronize() {
  impl_->op([&] { IVL_CUDA_CHECK(cudaStreamSynchronize(impl_->stream)); });
}

CudaMemoryStats CudaBackend::memoryStats() const {
  const AllocatorStats s = impl_->ctx->allocator.stats();
  CudaMemoryStats m;
  m.inUseBytes = s.inUseBytes;
  m.cachedBytes = s.cachedBytes;
  m.weightBytes = s.persistentBytes;
  m.peakInUseBytes = s.peakInUseBytes;
  m.deviceMallocs = s.deviceMallocs;
  m.cacheHits = s.cacheHits;
  return m;
}

bool CudaBackend::deviceMemory(DeviceMemory& out) const {
  const AllocatorStats s = impl_->ctx->allocator.stats();
  out.weightBytes = s.persistentBytes;
  out.inUseBytes = s.inUseBytes;
  out.peakBytes = s.peakInUseBytes;
  out.cachedBytes = s.cachedBytes;
  return true;
}

Tensor CudaBackend::copyFrom(const Tensor& src, Backend& from, bool settled) {
  auto* other = dynamic_cast<CudaBackend*>(&from);
  if (!other) return Backend::copyFrom(src, from, settled);
  if (other == this) return src;
  Impl& o = *other->impl_;
  // The producer's queued work must be done before the copy reads src, and src's block may be
  // reused by the producer's stream as soon as the caller lets go of it: so the producer is
  // synchronized first (unless the caller already did: settled) and the copy completes before
  // this returns. A model split across devices pays this once per device boundary per step.
  if (!settled) o.op([&] { IVL_CUDA_CHECK(cudaStreamSynchronize(o.stream)); });
  return impl_->op([&] {
    // Activations only: a packed int8 weight's bytes are more than nbytes() and its scales
    // live beside it, so a byte copy would silently truncate it.
    need(src.dtype() != DType::I8, "copyFrom: int8 weights cannot be copied between devices");
    Tensor dst = impl_->newTensor(src.dtype(), src.shape(), false);
    if (src.nbytes() == 0) return dst;
    IVL_CUDA_CHECK(cudaMemcpyPeerAsync(dst.raw(), impl_->device, src.raw(), o.device, src.nbytes(), impl_->stream));
    IVL_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
    return dst;
  });
}

void CudaBackend::emptyCache() {
  impl_->op([&] {
    impl_->decodeWorkspace.reset();
    impl_->int8Workspace.reset();
    impl_->slotsUpload = UploadCache{};
    impl_->pagedMetaUpload = UploadCache{};
    impl_->ctx->allocator.emptyCache();
  });
}

FaultInjector* CudaBackend::faultInjector() { return &impl_->ctx->allocator.faults(); }

void CudaBackend::injectFaultForTesting() {
  impl_->op([&] {
    faultKernel<<<1, 1, 0, impl_->stream>>>(reinterpret_cast<int*>(uintptr_t(16)));
    IVL_CUDA_CHECK(cudaGetLastError());
    IVL_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
  });
}

Tensor CudaBackend::alloc(DType dtype, const Shape& shape) {
  return impl_->op([&] { return impl_->newTensor(dtype, shape, false); });
}

Tensor CudaBackend::weight(const StoredTensor& src, WeightUse use) {
  return impl_->op([&] {
    require(src.floatDType.has_value(), ErrorCode::Checkpoint,
            "tensor " + src.name + " has dtype " + src.dtypeName + ", expected a floating-point weight");
    return impl_->upload(src.data, *src.floatDType, src.shape, use);
  });
}

Tensor CudaBackend::weightFromHost(const void* data, DType hostDType, const Shape& shape, WeightUse use) {
  return impl_->op([&] {
    need(hostDType == DType::F32 || hostDType == DType::BF16, "weightFromHost takes F32 or BF16");
    return impl_->upload(data, hostDType, shape, use);
  });
}

Tensor CudaBackend::uploadF32(const float* data, const Shape& shape) {
  return impl_->op([&] {
    Tensor t = impl_->newTensor(DType::BF16, shape, false);
    const int64_t n = t.numel();
    if (n == 0) return t;
    ScratchBlock tmp(impl_->ctx->allocator, size_t(n) * 4);
    IVL_CUDA_CHECK(cudaMemcpyAsync(tmp.get(), data, size_t(n) * 4, cudaMemcpyHostToDevice, impl_->stream));
    convertToBf16(t.ptr<bf16>(), tmp.get(), DType::F32, n, impl_->stream);
    return t;
  });
}

void CudaBackend::downloadF32(const Tensor& t, float* out) {
  impl_->op([&] {
    need(t.defined(), "downloadF32 of an undefined tensor");
    const int64_t n = t.numel();
    if (n == 0) return;
    if (t.dtype() == DType::F32) {
      IVL_CUDA_CHECK(cudaMemcpyAsync(out, t.raw(), size_t(n) * 4, cudaMemcpyDeviceToHost, impl_->stream));
    } else {
      need(t.dtype() == DType::BF16 || t.dtype() == DType::F16,
           std::string("downloadF32 of a ") + dtypeName(t.dtype()) + " tensor");
      ScratchBlock tmp(impl_->ctx->allocator, size_t(n) * 4);
      convertToF32(tmp.as<float>(), t.raw(), t.dtype(), n, impl_->stream);
      IVL_CUDA_CHECK(cudaMemcpyAsync(out, tmp.get(), size_t(n) * 4, cudaMemcpyDeviceToHost, impl_->stream));
    }
    IVL_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
  });
}

// ---- dense math ---------------------------------------------------------------------------------

void CudaBackend::matmul(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) {
  impl_->op([&] {
    const int64_t M = x.rows(), K = x.cols(), N = w.rows();
    needDType(x, DType::BF16, "matmul: x");
    needDType(y, DType::BF16, "matmul: y");
    need(w.defined() && (w.dtype() == DType::BF16 || (w.dtype() == DType::I8 && w.hasScales())),
         std::string("matmul: w must be BF16 or packed I8 on the CUDA backend (load it with weight()), got ") +
             (w.defined() ? dtypeName(w.dtype()) : "undefined"));
    need(w.cols() == K && y.rows() == M && y.cols() == N,
         "matmul: shape mismatch y" + shapeString(y.shape()) + " = x" + shapeString(x.shape()) + " · w" +
             shapeString(w.shape()) + "ᵀ");
    need(!bias || (bias->defined() && bias->numel() == N), "matmul: bias must have N = " + std::to_string(N) + " elements");
    if (M == 0 || N == 0) return;
    need(K > 0, "matmul: K must be > 0");
    ScratchBlock tmp;
    const bf16* b = bias ? impl_->biasBf16(*bias, tmp) : nullptr;
    if (w.dtype() == DType::I8) return impl_->matmulInt8(y, x, w, b);
    // Single rows (batch-1 decode: the LM head, every linear of a bf16 model): the streaming
    // GEMV, a PDL kernel (gemv_bf16.h; INTERNVL_CUDA_BF16_GEMV=0 keeps cuBLASLt).
    static const bool gemv = envSwitch("INTERNVL_CUDA_BF16_GEMV", true);
    if (gemv && gemvBf16Fits(x.ptr<bf16>(), w.ptr<bf16>(), M, N, K))
      return gemvBf16(y.ptr<bf16>(), x.ptr<bf16>(), w.ptr<bf16>(), b, M, N, K, impl_->stream);
    impl_->gemm->run(y.ptr<bf16>(), x.ptr<bf16>(), w.ptr<bf16>(), b, M, N, K);
  });
}

void CudaBackend::layerNorm(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  impl_->op([&] {
    const int64_t M = x.rows(), C = x.cols();
    needDType(x, DType::BF16, "layerNorm: x");
    needDType(y, DType::BF16, "layerNorm: y");
    needDType(w, DType::F32, "layerNorm: w");
    needDType(b, DType::F32, "layerNorm: b");
    need(y.rows() == M && y.cols() == C && w.numel() == C && b.numel() == C, "layerNorm: shape mismatch");
    layerNormBf16(y.ptr<bf16>(), x.ptr<bf16>(), w.ptr<float>(), b.ptr<float>(), M, C, float(eps), impl_->stream);
  });
}

void CudaBackend::rmsNorm(const Tensor& y, const Tensor& x, const Tensor& w, double eps) {
  impl_->op([&] {
    const int64_t M = x.rows(), C = x.cols();
    needDType(x, DType::BF16, "rmsNorm: x");
    needDType(y, DType::BF16, "rmsNorm: y");
    needDType(w, DType::F32, "rmsNorm: w");
    need(y.rows() == M && y.cols() == C && w.numel() == C, "rmsNorm: shape mismatch");
    rmsNormBf16(y.ptr<bf16>(), x.ptr<bf16>(), w.ptr<float>(), M, C, float(eps), impl_->stream);
  });
}

void CudaBackend::addRmsNorm(const Tensor& y, const Tensor& x, const Tensor& r, const Tensor& w, double eps) {
  impl_->op([&] {
    const int64_t M = x.rows(), C = x.cols();
    needDType(x, DType::BF16, "addRmsNorm: x");
    needDType(r, DType::BF16, "addRmsNorm: r");
    needDType(y, DType::BF16, "addRmsNorm: y");
    needDType(w, DType::F32, "addRmsNorm: w");
    need(y.rows() == M && y.cols() == C && r.rows() == M && r.cols() == C && w.numel() == C,
         "addRmsNorm: shape mismatch");
    need(y.raw() != x.raw() && y.raw() != r.raw(), "addRmsNorm: y must not alias x or r");
    addRmsNormBf16(y.ptr<bf16>(), x.ptr<bf16>(), r.ptr<bf16>(), w.ptr<float>(), M, C, float(eps), impl_->stream);
  });
}

void CudaBackend::gelu(const Tensor& y, const Tensor& x) {
  impl_->op([&] {
    needDType(x, DType::BF16, "gelu: x");
    needDType(y, DType::BF16, "gelu: y");
    need(x.numel() == y.numel(), "gelu: shape mismatch");
    geluBf16(y.ptr<bf16>(), x.ptr<bf16>(), y.numel(), impl_->stream);
  });
}

void CudaBackend::siluMul(const Tensor& y, const Tensor& gate, const Tensor& up) {
  impl_->op([&] {
    needDType(y, DType::BF16, "siluMul: y");
    needDType(gate, DType::BF16, "siluMul: gate");
    needDType(up, DType::BF16, "siluMul: up");
    need(gate.numel() == y.numel() && up.numel() == y.numel(), "siluMul: shape mismatch");
    siluMulBf16(y.ptr<bf16>(), gate.ptr<bf16>(), up.ptr<bf16>(), y.numel(), impl_->stream);
  });
}

void CudaBackend::add(const Tensor& y, const Tensor& a, const Tensor& b) {
  impl_->op([&] {
    needDType(y, DType::BF16, "add: y");
    needDType(a, DType::BF16, "add: a");
    needDType(b, DType::BF16, "add: b");
    need(a.numel() == y.numel() && b.numel() == y.numel(), "add: shape mismatch");
    addBf16(y.ptr<bf16>(), a.ptr<bf16>(), b.ptr<bf16>(), y.numel(), impl_->stream);
  });
}

void CudaBackend::addScaled(const Tensor& y, const Tensor& x, const Tensor& s) {
  impl_->op([&] {
    const int64_t M = y.rows(), C = y.cols();
    needDType(y, DType::BF16, "addScaled: y");
    needDType(x, DType::BF16, "addScaled: x");
    needDType(s, DType::F32, "addScaled: s");
    need(x.rows() == M && x.cols() == C && s.numel() == C, "addScaled: shape mismatch");
    addScaledBf16(y.ptr<bf16>(), x.ptr<bf16>(), s.ptr<float>(), M, C, impl_->stream);
  });
}

void CudaBackend::addScaledNorm(const Tensor& y, const Tensor& x, const Tensor& r, const Tensor& s, const Tensor& w,
                                const Tensor& b, bool layerNorm, double eps) {
  if (!impl_->fusedVit) return Backend::addScaledNorm(y, x, r, s, w, b, layerNorm, eps);
  impl_->op([&] {
    const int64_t M = x.rows(), C = x.cols();
    needDType(x, DType::BF16, "addScaledNorm: x");
    needDType(r, DType::BF16, "addScaledNorm: r");
    needDType(y, DType::BF16, "addScaledNorm: y");
    needDType(s, DType::F32, "addScaledNorm: s");
    needDType(w, DType::F32, "addScaledNorm: w");
    if (layerNorm) needDType(b, DType::F32, "addScaledNorm: b");
    need(y.rows() == M && y.cols() == C && r.rows() == M && r.cols() == C && s.numel() == C && w.numel() == C &&
             (!layerNorm || b.numel() == C),
         "addScaledNorm: shape mismatch");
    need(y.raw() != x.raw() && y.raw() != r.raw(), "addScaledNorm: y must not alias x or r");
    addScaledNormBf16(y.ptr<bf16>(), x.ptr<bf16>(), r.ptr<bf16>(), s.ptr<float>(), w.ptr<float>(),
                      layerNorm ? b.ptr<float>() : nullptr, M, C, float(eps), layerNorm, impl_->stream);
  });
}

// ---- rows ------------------------------------------------------------------------------------------

void CudaBackend::embedding(const Tensor& y, const Tensor& table, const std::vector<int32_t>& ids) {
  impl_->op([&] {
    const int64_t V = table.rows(), H = table.cols();
    needDType(y, DType::BF16, "embedding: y");
    need(table.defined() && (table.dtype() == DType::BF16 || table.dtype() == DType::F32),
         "embedding: table must be BF16 or F32");
    need(y.rows() == int64_t(ids.size()) && y.cols() == H, "embedding: shape mismatch");
    for (int32_t id : ids) {
      if (id < 0 || id >= V) {
        throw Error(ErrorCode::InvalidArg,
                    "token id " + std::to_string(id) + " is out of range for a vocabulary of " + std::to_string(V));
      }
    }
    if (ids.empty() || H == 0) return;
    PackedUpload up = impl_->uploadOne(ids);
    embeddingBf16(y.ptr<bf16>(), table.raw(), table.dtype(), up.at<int32_t>(0), int64_t(ids.size()), H,
                  impl_->stream);
  });
}

void CudaBackend::scatterRows(const Tensor& dst, const std::vector<int64_t>& rows, const Tensor& src) {
  impl_->op([&] {
    const int64_t C = dst.cols();
    need(dst.defined() && src.defined() && dst.dtype() == src.dtype(), "scatterRows: dtypes differ");
    need(src.cols() == C && src.rows() >= int64_t(rows.size()), "scatterRows: shape mismatch");
    for (int64_t r : rows) need(r >= 0 && r < dst.rows(), "scatterRows: row out of range");
    if (rows.empty() || C == 0) return;
    PackedUpload up = impl_->uploadOne(rows);
    copyRows(dst.raw(), up.at<int64_t>(0), src.raw(), nullptr, int64_t(rows.size()),
             C * int64_t(dtypeSize(dst.dtype())), impl_->stream);
  });
}

void CudaBackend::gatherRows(const Tensor& dst, const Tensor& src, const std::vector<int64_t>& rows) {
  impl_->op([&] {
    const int64_t C = src.cols();
    need(dst.defined() && src.defined() && dst.dtype() == src.dtype(), "gatherRows: dtypes differ");
    need(dst.cols() == C && dst.rows() == int64_t(rows.size()), "gatherRows: shape mismatch");
    for (int64_t r : rows) need(r >= 0 && r < src.rows(), "gatherRows: row out of range");
    if (rows.empty() || C == 0) return;
    PackedUpload up = impl_->uploadOne(rows);
    copyRows(dst.raw(), nullptr, src.raw(), up.at<int64_t>(0), int64_t(rows.size()),
             C * int64_t(dtypeSize(src.dtype())), impl_->stream);
  });
}

// ---- attention-adjacent ------------------------------------------------------------------------------

void CudaBackend::rope(const Tensor& x, int64_t nHeads, const Tensor& cos, const Tensor& sin) {
  impl_->op([&] {
    const int64_t T = cos.rows(), half = cos.cols(), D = 2 * half;
    needDType(x, DType::BF16, "rope: x");
    need(cos.defined() && sin.defined() && cos.dtype() == sin.dtype() &&
             (cos.dtype() == DType::BF16 || cos.dtype() == DType::F32),
         "rope: cos/sin must both be BF16 or F32");
    need(x.numel() == T * nHeads * D && sin.rows() == T && sin.cols() == half, "rope: shape mismatch");
    ropeBf16(x.ptr<bf16>(), T, nHeads, half, cos.raw(), sin.raw(), cos.dtype(), impl_->stream);
  });
}

void CudaBackend::kvWrite(const KvLayer& layer, const Tensor& k, const Tensor& v, const PagedBatch& batch) {
  impl_->op([&] {
    const int64_t T = batch.numTokens();
    needDType(layer.k, DType::BF16, "kvWrite: cache k");
    needDType(layer.v, DType::BF16, "kvWrite: cache v");
    needDType(k, DType::BF16, "kvWrite: k");
    needDType(v, DType::BF16, "kvWrite: v");
    need(layer.k.rank() == 4 && layer.v.shape() == layer.k.shape(), "kvWrite: cache layout");
    const int64_t rowElems = layer.k.dim(2) * layer.k.dim(3);  // numKvHeads · D
    const int64_t capacity = layer.k.dim(0) * layer.k.dim(1);
    need(int64_t(batch.slots.size()) == T, "kvWrite: slots and positions differ in length");
    need(k.rows() == T && v.rows() == T && k.cols() == rowElems && v.cols() == rowElems, "kvWrite: shape mismatch");
    for (int64_t slot : batch.slots) need(slot >= 0 && slot < capacity, "kvWrite: slot out of range");
    if (T == 0) return;
    PackedUpload up = impl_->uploadOne(batch.slots, &impl_->slotsUpload);
    copyRows(layer.k.raw(), up.at<int64_t>(0), k.raw(), nullptr, T, rowElems * 2, impl_->stream);
    copyRows(layer.v.raw(), up.at<int64_t>(0), v.raw(), nullptr, T, rowElems * 2, impl_->stream);
  });
}

void CudaBackend::qkvRopeKvWrite(const Tensor& q, const KvLayer& layer, const Tensor& qkv, int64_t nHeads,
                                 int64_t nKvHeads, const Tensor& cos, const Tensor& sin, const PagedBatch& batch) {
  impl_->op([&] {
    const int64_t T = batch.numTokens(), half = cos.cols(), D = 2 * half;
    needDType(q, DType::BF16, "qkvRopeKvWrite: q");
    needDType(qkv, DType::BF16, "qkvRopeKvWrite: qkv");
    needDType(layer.k, DType::BF16, "qkvRopeKvWrite: cache k");
    needDType(layer.v, DType::BF16, "qkvRopeKvWrite: cache v");
    need(cos.defined() && sin.defined() && cos.dtype() == sin.dtype() &&
             (cos.dtype() == DType::BF16 || cos.dtype() == DType::F32) && cos.rows() == T && sin.rows() == T &&
             sin.cols() == half,
         "qkvRopeKvWrite: cos/sin must both be BF16 or F32 [T, D/2]");
    need(layer.k.rank() == 4 && layer.v.shape() == layer.k.shape() && layer.k.dim(2) == nKvHeads &&
             layer.k.dim(3) == D,
         "qkvRopeKvWrite: cache layout");
    need(q.rows() == T && q.cols() == nHeads * D && qkv.rows() == T && qkv.cols() == (nHeads + 2 * nKvHeads) * D,
         "qkvRopeKvWrite: shape mismatch");
    need(int64_t(batch.slots.size()) == T, "qkvRopeKvWrite: slots and positions differ in length");
    const int64_t capacity = layer.k.dim(0) * layer.k.dim(1);
    for (int64_t slot : batch.slots) need(slot >= 0 && slot < capacity, "qkvRopeKvWrite: slot out of range");
    if (T == 0) return;
    PackedUpload up = impl_->uploadOne(batch.slots, &impl_->slotsUpload);
    qkvRopeAppendBf16(q.ptr<bf16>(), layer.k.ptr<bf16>(), layer.v.ptr<bf16>(), qkv.ptr<bf16>(), cos.raw(), sin.raw(),
                      cos.dtype(), up.at<int64_t>(0), T, nHeads, nKvHeads, half, impl_->stream);
  });
}

// ---- vision ---------------------------------------------------------------------------------------------

void CudaBackend::patchify(const Tensor& out, const Tensor& pixels, int64_t p) {
  impl_->op([&] {
    needDType(pixels, DType::BF16, "patchify: pixels");
    needDType(out, DType::BF16, "patchify: out");
    need(pixels.rank() == 4 && p > 0, "patchify: pixels must be [T, 3, S, S]");
    const int64_t T = pixels.dim(0), S = pixels.dim(2), G = S / p;
    need(pixels.dim(1) == 3 && pixels.dim(3) == S && G * p == S, "patchify: pixels shape");
    need(out.rows() == T * G * G && out.cols() == 3 * p * p, "patchify: out shape");
    patchifyBf16(out.ptr<bf16>(), pixels.ptr<bf16>(), T, S, p, impl_->stream);
  });
}

void CudaBackend::vitEmbed(const Tensor& out, const Tensor& patches, const Tensor& cls, const Tensor& pos) {
  impl_->op([&] {
    needDType(out, DType::BF16, "vitEmbed: out");
    needDType(patches, DType::BF16, "vitEmbed: patches");
    needDType(cls, DType::F32, "vitEmbed: cls");
    needDType(pos, DType::F32, "vitEmbed: pos");
    need(out.rank() == 3, "vitEmbed: out must be [T, 1 + G², C]");
    const int64_t T = out.dim(0), N = out.dim(1), C = out.dim(2), G2 = N - 1;
    need(N >= 1 && patches.rows() == T * G2 && patches.cols() == C && cls.numel() == C && pos.numel() == N * C,
         "vitEmbed: shape mismatch");
    vitEmbedBf16(out.ptr<bf16>(), patches.ptr<bf16>(), cls.ptr<float>(), pos.ptr<float>(), T, N, C, impl_->stream);
  });
}

void CudaBackend::pixelShuffle(const Tensor& out, const Tensor& x, int64_t grid, int64_t s) {
  impl_->op([&] {
    need(out.defined() && x.defined() && out.dtype() == x.dtype(), "pixelShuffle: dtypes differ");
    need(x.rank() == 3 && out.rank() == 3 && s > 0, "pixelShuffle: x and out must be rank 3");
    const int64_t T = x.dim(0), C = x.dim(2), G2 = grid / s;
    need(x.dim(1) == 1 + grid * grid && G2 * s == grid, "pixelShuffle: input shape");
    need(out.dim(0) == T && out.dim(1) == G2 * G2 && out.dim(2) == s * s * C, "pixelShuffle: output shape");
    pixelShuffleRows(out.raw(), x.raw(), T, grid, s, C, int64_t(dtypeSize(x.dtype())), impl_->stream);
  });
}

}  // namespace ivl::cuda
