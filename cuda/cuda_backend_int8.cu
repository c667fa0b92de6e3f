// CudaBackend's W8A16 weights (issue #7) and stacked weights.
//
// An int8 weight is an I8 tensor [N, K] whose buffer holds the GEMM's packed layout
// (quantize_int8.h: 16-row tiles, each row padded to Kp = 128·ceil(K/128) bytes) and whose
// attached F32 scales tensor [N, G] holds the packed scales. Only this backend reads either.
// A row slice (q/k/v of a stacked weight) keeps Tensor::slice0's arithmetic: it starts at
// byte begin·K, from which matmul recovers `begin` and finds the tile (begin must be a
// multiple of 16: every q/k/v/gate/up boundary of the family is). The scales slice lands
// on the right tile by the same arithmetic (per channel: begin·4 bytes; per group: tile
// begin/16 of G·16 floats = begin·G·4 bytes).
//
// Quantization runs on the device as each tensor loads: the bf16 rows go to a scratch
// block, quantizeW8A16 writes the packed bytes, the scratch returns to the cache. Peak
// memory is the int8 model plus the largest single bf16 tensor.
//
// matmul routes by the number of activation rows m (cuda/dev/w8a16/README.md measured the
// crossovers on the 40B shapes):
//   m <= 32        the weight-streaming decode kernel (1.5–1.8× cuBLAS bf16 at m = 1)
//   32 < m <= 64   the tensor-core W8A16 kernel split along K, on weights of 2048 rows or more
//                  (1.2–1.7× faster than dequantize + cuBLAS there; w8a16KernelBeatsDequant)
//   otherwise      dequantize into a bf16 scratch copy, then cuBLASLt (as fast as the best
//                  tensor-core tile at m = 96; 1.26× the bf16 GEMM time at m = 1024, where the
//                  mma.sync kernel is 3.3×)
#include <algorithm>

#include "cuda_backend_impl.h"
#include "elementwise.h"
#include "gemm_w8a16.h"
#include "quantize_int8.h"
#include "runtime/quantize.h"

namespace ivl::cuda {

namespace {

constexpr int64_t kDecodeMaxRows = kW8A16DecodeMaxM;  // 32

bool isInt8(const Tensor& w) { return w.defined() && w.dtype() == DType::I8 && w.hasScales(); }

Int8Scheme schemeOf(WeightUse use) {
  return use == WeightUse::Int8PerGroup128 ? Int8Scheme::PerGroup128 : Int8Scheme::PerChannel;
}

}  // namespace

void CudaBackend::Impl::hostToDevice(void* dst, DType dstType, const void* src, DType srcType, int64_t n) {
  if (n == 0) return;
  if (srcType == dstType) {
    IVL_CUDA_CHECK(
        cudaMemcpyAsync(dst, src, size_t(n) * dtypeSize(srcType), cudaMemcpyHostToDevice, stream));
    return;
  }
  constexpr int64_t kChunk = int64_t(16) << 20;  // elements per staging round
  const size_t es = dtypeSize(srcType);
  ScratchBlock tmp(ctx->allocator, size_t(std::min(n, kChunk)) * es);
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    IVL_CUDA_CHECK(cudaMemcpyAsync(tmp.get(), static_cast<const char*>(src) + size_t(i) * es, size_t(m) * es,
                                   cudaMemcpyHostToDevice, stream));
    if (dstType == DType::BF16) convertToBf16(static_cast<bf16*>(dst) + i, tmp.get(), srcType, m, stream);
    else convertToF32(static_cast<float*>(dst) + i, tmp.get(), srcType, m, stream);
  }
}

Tensor CudaBackend::Impl::newInt8(int64_t n, int64_t k, WeightUse use) {
  need(n > 0 && k > 0 && n <= INT32_MAX && k <= INT32_MAX, "int8 weight shape [" + std::to_string(n) + ", " +
                                                               std::to_string(k) + "]");
  require(k % 8 == 0, ErrorCode::InvalidArg,
          "int8 weights need an input width that is a multiple of 8 (got " + std::to_string(k) + ")");
  const Int8Scheme scheme = schemeOf(use);
  const int N = int(n), K = int(k);
  auto q = std::make_shared<DeviceBuffer>(ctx, w8a16PackedBytes(N, K), true);
  auto s = std::make_shared<DeviceBuffer>(ctx, w8a16ScaleCount(N, K, scheme) * 4, true);
  const int64_t group = scheme == Int8Scheme::PerGroup128 ? kInt8Group : k;
  Tensor t(q, DType::I8, {n, k});
  t.setScales(Tensor(s, DType::F32, {n, int8Groups(k, group)}), group);
  return t;
}

W8A16Weight CudaBackend::Impl::int8View(const Tensor& w) {
  need(w.dtype() == DType::I8 && w.hasScales() && w.rank() == 2, "int8 weight without scales");
  const int64_t K = w.cols();
  const size_t off = w.byteOffset();
  need(off % size_t(K) == 0, "int8 weight view is not a row slice");
  const int64_t begin = int64_t(off / size_t(K));
  need(begin % kW8A16Tile == 0, "int8 weight slice starts at row " + std::to_string(begin) +
                                    ", not on a 16-row tile of the packed layout");
  W8A16Weight d;
  const int groups = w8a16Groups(int(K));
  d.qweight = static_cast<uint8_t*>(w.raw()) - off + size_t(begin) * size_t(groups) * kW8A16Group;
  d.scales = w.scales().ptr<float>();
  d.n = int(w.rows());
  d.k = int(K);
  d.scheme = w.scaleGroup() == kInt8Group && K > kInt8Group ? Int8Scheme::PerGroup128 : Int8Scheme::PerChannel;
  return d;
}

void CudaBackend::Impl::quantizeRows(const Tensor& w, int64_t row0, const void* host, DType hostDType,
                                     int64_t rows) {
  if (rows == 0) return;
  const Tensor part = w.slice0(row0, rows);
  const W8A16Weight d = int8View(part);
  ScratchBlock bf(ctx->allocator, size_t(rows) * size_t(w.cols()) * 2);  // [rows, K] bf16
  hostToDevice(bf.get(), DType::BF16, host, hostDType, rows * w.cols());
  quantizeW8A16(bf.as<bf16>(), d, stream);
}

void CudaBackend::Impl::matmulInt8(const Tensor& y, const Tensor& x, const Tensor& w, const bf16* bias) {
  const W8A16Weight d = int8View(w);
  const int64_t M = x.rows();
  if (!w8a16KernelBeatsDequant(d, int(std::min<int64_t>(M, 1 << 30)))) {
    ScratchBlock deq(ctx->allocator, size_t(d.n) * size_t(d.k) * 2);  // W' [N, K] bf16
    dequantizeW8A16(d, deq.as<bf16>(), stream);
    gemm->run(y.ptr<bf16>(), x.ptr<bf16>(), deq.as<bf16>(), bias, M, d.n, d.k);
    return;
  }
  const auto [ws, wsBytes] = int8DecodeWorkspace(w8a16WorkspaceBytes(d));
  gemmW8A16(d, x.ptr<bf16>(), int(M), y.ptr<bf16>(), bias, stream, ws, wsBytes);
}

std::pair<void*, size_t> CudaBackend::Impl::int8DecodeWorkspace(size_t want) {
  // Grown to the largest weight's need; its counters must start zeroed and every call leaves
  // them zeroed (gemm_w8a16.h), so a fresh block is cleared once.
  if (int8Workspace.capacity() < want) {
    int8Workspace = ScratchBlock(ctx->allocator, want);
    IVL_CUDA_CHECK(cudaMemsetAsync(int8Workspace.get(), 0, int8Workspace.capacity(), stream));
  }
  return {int8Workspace.get(), int8Workspace.capacity()};
}

// ---- CudaBackend ---------------------------------------------------------------------------

Tensor CudaBackend::stackedWeight(const std::vector<const StoredTensor*>& parts, WeightUse use) {
  return impl_->op([&]() -> Tensor {
    need(!parts.empty() && (use == WeightUse::Matrix || isInt8Use(use)), "stackedWeight: parts and use");
    const int64_t K = parts[0]->shape.empty() ? 0 : shapeNumel(parts[0]->shape) / parts[0]->shape[0];
    int64_t N = 0;
    for (const StoredTensor* p : parts) {
      require(p->floatDType.has_value(), ErrorCode::Checkpoint,
              "tensor " + p->name + " has dtype " + p->dtypeName + ", expected a floating-point weight");
      need(p->shape.size() >= 2 && shapeNumel(p->shape) / p->shape[0] == K, "stackedWeight: widths differ");
      // The packed int8 layout can only start a part on a 16-row tile; keep odd parts apart.
      if (isInt8Use(use) && N % kW8A16Tile != 0) return {};
      N += p->shape[0];
    }
    if (isInt8Use(use)) {
      Tensor t = impl_->newInt8(N, K, use);
      int64_t row = 0;
      for (const StoredTensor* p : parts) {
        impl_->quantizeRows(t, row, p->data, *p->floatDType, p->shape[0]);
        row += p->shape[0];
      }
      return t;
    }
    Tensor t = impl_->newTensor(DType::BF16, {N, K}, true);
    int64_t row = 0;
    for (const StoredTensor* p : parts) {
      impl_->hostToDevice(t.ptr<bf16>() + row * K, DType::BF16, p->data, *p->floatDType, p->shape[0] * K);
      row += p->shape[0];
    }
    return t;
  });
}

void CudaBackend::siluMulHalves(const Tensor& y, const Tensor& gu) {
  impl_->op([&] {
    const int64_t M = y.rows(), F = y.cols();
    needDType(y, DType::BF16, "siluMulHalves: y");
    needDType(gu, DType::BF16, "siluMulHalves: gu");
    need(gu.rows() == M && gu.cols() == 2 * F, "siluMulHalves: shape mismatch");
    siluMulHalvesBf16(y.ptr<bf16>(), gu.ptr<bf16>(), M, F, impl_->stream);
  });
}

// Int8 decode rows: the GEMV forms the activation in its epilogue (gemmW8A16SiluMul) and gu
// stays untouched; other weights and row counts, and the configurations that cannot pair the
// halves, compose (Backend's matmul, then siluMulHalves).
void CudaBackend::matmulSiluMulHalves(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& gu) {
  const bool fused = impl_->op([&] {
    if (!impl_->siluInGemv || !isInt8(w)) return false;
    const int64_t M = x.rows(), F = y.cols();
    needDType(x, DType::BF16, "matmulSiluMulHalves: x");
    needDType(y, DType::BF16, "matmulSiluMulHalves: y");
    need(w.cols() == x.cols() && w.rows() == 2 * F && y.rows() == M,
         "matmulSiluMulHalves: shape mismatch y" + shapeString(y.shape()) + " = act(x" + shapeString(x.shape()) +
             " · w" + shapeString(w.shape()) + "ᵀ)");
    if (M == 0 || F == 0) return true;
    if (M > kDecodeMaxRows || F % kW8A16Tile != 0) return false;
    const W8A16Weight d = impl_->int8View(w);
    const auto [ws, wsBytes] = impl_->int8DecodeWorkspace(w8a16WorkspaceBytes(d));
    return gemmW8A16SiluMul(d, x.ptr<bf16>(), int(M), y.ptr<bf16>(), impl_->stream, ws, wsBytes);
  });
  if (!fused) Backend::matmulSiluMulHalves(y, x, w, gu);
}

// The deferred norm (Backend::rmsNormMayDefer, matmulAddRmsNorm and the rmsNormed* forms): on
// int8 decode rows the residual GEMV adds into x, writes the next norm's x ⊙ g into a and its
// rows' sums of squares into normSquares (a run's first norm: w8a16RmsPrep, the same bits), and
// the next GEMV applies each row's 1/rms after its sums: no norm kernel between two GEMVs
// (gemm_w8a16.h). Other weights and rows compose (Backend's defaults), as do shapes the kernels
// refuse, which they do before touching anything.
//
// Whether a norm may defer to `reader`: an int8 weight, the switches on, and rows the RMS form
// takes for the reader's width (the kernels' own rule, w8a16RmsRuns: one slot per 32 columns).
bool CudaBackend::Impl::defersTo(const Tensor* reader, int64_t rows) const {
  return reader != nullptr && isInt8(*reader) && normsInGemv && siluInGemv && rows <= kW8A16DecodeMaxM &&
         w8a16RmsRuns(int(rows), int((reader->cols() + 31) / 32));
}

W8A16RmsRows CudaBackend::Impl::normRows(double eps) {
  if (normSquares.capacity() < kW8A16RmsMaxSlots * 8 * sizeof(float))
    normSquares = ScratchBlock(ctx->allocator, kW8A16RmsMaxSlots * 8 * sizeof(float));
  W8A16RmsRows rows;
  rows.squares = normSquares.as<float>();
  rows.eps = float(eps);
  return rows;
}

bool CudaBackend::rmsNormMayDefer(const Tensor& a, const Tensor& x, const Tensor& normW, double eps,
                                  const Tensor* reader) {
  const bool deferred = impl_->op([&] {
    const int64_t M = x.rows(), N = x.cols();
    if (!impl_->defersTo(reader, M)) return false;
    needDType(x, DType::BF16, "rmsNormMayDefer: x");
    needDType(a, DType::BF16, "rmsNormMayDefer: a");
    needDType(normW, DType::F32, "rmsNormMayDefer: normW");
    need(a.rows() == M && a.cols() == N && normW.numel() == N && a.raw() != x.raw(),
         "rmsNormMayDefer: shape mismatch or aliasing a" + shapeString(a.shape()) + " = rmsNorm(x" +
             shapeString(x.shape()) + ")");
    W8A16RmsRows rows = impl_->normRows(eps);
    if (!w8a16RmsPrep(x.ptr<bf16>(), int(M), int(N), normW.ptr<float>(), a.ptr<bf16>(), rows, impl_->stream))
      return false;
    impl_->pendingNorm = rows;
    return true;
  });
  if (!deferred) return Backend::rmsNormMayDefer(a, x, normW, eps, reader);
  return true;
}

bool CudaBackend::matmulAddRmsNorm(const Tensor& x, const Tensor& a, const Tensor& r, const Tensor& h,
                                   const Tensor& w, const Tensor* bias, const Tensor& normW, double eps,
                                   const Tensor* reader) {
  const bool deferred = impl_->op([&] {
    if (!isInt8(w) || !impl_->defersTo(reader, h.rows())) return false;
    const int64_t M = h.rows(), N = w.rows();
    needDType(h, DType::BF16, "matmulAddRmsNorm: h");
    needDType(x, DType::BF16, "matmulAddRmsNorm: x");
    needDType(a, DType::BF16, "matmulAddRmsNorm: a");
    needDType(normW, DType::F32, "matmulAddRmsNorm: normW");
    need(w.cols() == h.cols() && x.rows() == M && x.cols() == N && a.rows() == M && a.cols() == N &&
             normW.numel() == N,
         "matmulAddRmsNorm: shape mismatch x" + shapeString(x.shape()) + " += h" + shapeString(h.shape()) + " · w" +
             shapeString(w.shape()) + "ᵀ, a" + shapeString(a.shape()));
    need(!bias || (bias->defined() && bias->numel() == N),
         "matmulAddRmsNorm: bias must have N = " + std::to_string(N) + " elements");
    need(x.raw() != h.raw() && a.raw() != h.raw() && a.raw() != x.raw(), "matmulAddRmsNorm: x, a and h must not alias");
    if (N == 0) return false;
    ScratchBlock tmp;
    const bf16* b = bias ? impl_->biasBf16(*bias, tmp) : nullptr;
    const W8A16Weight d = impl_->int8View(w);
    const auto [ws, wsBytes] = impl_->int8DecodeWorkspace(w8a16WorkspaceBytes(d));
    W8A16RmsRows rows = impl_->normRows(eps);
    if (!gemmW8A16Residual(d, h.ptr<bf16>(), int(M), x.ptr<bf16>(), b, impl_->stream, ws, wsBytes,
                           normW.ptr<float>(), a.ptr<bf16>(), &rows))
      return false;
    impl_->pendingNorm = rows;
    return true;
  });
  if (!deferred) return Backend::matmulAddRmsNorm(x, a, r, h, w, bias, normW, eps, reader);
  return true;
}

void CudaBackend::rmsNormedMatmul(const Tensor& y, const Tensor& a, const Tensor& w, const Tensor* bias,
                                  bool deferred) {
  if (!deferred) return Backend::rmsNormedMatmul(y, a, w, bias, false);
  impl_->op([&] {
    const int64_t M = a.rows(), N = w.rows();
    need(isInt8(w), "rmsNormedMatmul: a deferred norm needs the int8 GEMV");
    needDType(a, DType::BF16, "rmsNormedMatmul: a");
    needDType(y, DType::BF16, "rmsNormedMatmul: y");
    need(w.cols() == a.cols() && y.rows() == M && y.cols() == N,
         "rmsNormedMatmul: shape mismatch y" + shapeString(y.shape()) + " = a" + shapeString(a.shape()) + " · w" +
             shapeString(w.shape()) + "ᵀ");
    ScratchBlock tmp;
    const bf16* b = bias ? impl_->biasBf16(*bias, tmp) : nullptr;
    const W8A16Weight d = impl_->int8View(w);
    const auto [ws, wsBytes] = impl_->int8DecodeWorkspace(w8a16WorkspaceBytes(d));
    need(gemmW8A16Rms(d, a.ptr<bf16>(), int(M), y.ptr<bf16>(), b, impl_->pendingNorm, impl_->stream, ws, wsBytes),
         "rmsNormedMatmul: the int8 GEMV refused a deferred norm's rows");
  });
}

void CudaBackend::rmsNormedMatmulSiluMulHalves(const Tensor& y, const Tensor& a, const Tensor& w, const Tensor& gu,
                                               bool deferred) {
  if (!deferred) return Backend::rmsNormedMatmulSiluMulHalves(y, a, w, gu, false);
  impl_->op([&] {
    const int64_t M = a.rows(), F = y.cols();
    need(isInt8(w), "rmsNormedMatmulSiluMulHalves: a deferred norm needs the int8 GEMV");
    needDType(a, DType::BF16, "rmsNormedMatmulSiluMulHalves: a");
    needDType(y, DType::BF16, "rmsNormedMatmulSiluMulHalves: y");
    need(w.cols() == a.cols() && w.rows() == 2 * F && y.rows() == M,
         "rmsNormedMatmulSiluMulHalves: shape mismatch y" + shapeString(y.shape()) + " = act(a" +
             shapeString(a.shape()) + " · w" + shapeString(w.shape()) + "ᵀ)");
    const W8A16Weight d = impl_->int8View(w);
    const auto [ws, wsBytes] = impl_->int8DecodeWorkspace(w8a16WorkspaceBytes(d));
    need(gemmW8A16SiluMulRms(d, a.ptr<bf16>(), int(M), y.ptr<bf16>(), impl_->pendingNorm, impl_->stream, ws, wsBytes),
         "rmsNormedMatmulSiluMulHalves: the int8 GEMV refused a deferred norm's rows");
  });
}

// gemmW8A16Residual adds in place into x: the bits of matmul into r followed by add.
void CudaBackend::matmulAdd(const Tensor& x, const Tensor& r, const Tensor& a, const Tensor& w, const Tensor* bias) {
  const bool fused = impl_->op([&] {
    if (!impl_->normsInGemv || !isInt8(w)) return false;
    const int64_t M = a.rows(), N = w.rows();
    needDType(a, DType::BF16, "matmulAdd: a");
    needDType(x, DType::BF16, "matmulAdd: x");
    need(w.cols() == a.cols() && x.rows() == M && x.cols() == N,
         "matmulAdd: shape mismatch x" + shapeString(x.shape()) + " += a" + shapeString(a.shape()) + " · w" +
             shapeString(w.shape()) + "ᵀ");
    need(!bias || (bias->defined() && bias->numel() == N),
         "matmulAdd: bias must have N = " + std::to_string(N) + " elements");
    need(x.raw() != a.raw(), "matmulAdd: x must not alias a");
    if (M == 0 || N == 0) return true;
    if (M > kDecodeMaxRows) return false;
    ScratchBlock tmp;
    const bf16* b = bias ? impl_->biasBf16(*bias, tmp) : nullptr;
    const W8A16Weight d = impl_->int8View(w);
    const auto [ws, wsBytes] = impl_->int8DecodeWorkspace(w8a16WorkspaceBytes(d));
    return gemmW8A16Residual(d, a.ptr<bf16>(), int(M), x.ptr<bf16>(), b, impl_->stream, ws, wsBytes);
  });
  if (!fused) Backend::matmulAdd(x, r, a, w, bias);
}

void CudaBackend::splitColumns(const std::vector<Tensor>& dsts, const Tensor& src) {
  impl_->op([&] {
    const int64_t M = src.rows(), C = src.cols();
    const size_t es = dtypeSize(src.dtype());
    int64_t total = 0;
    for (const Tensor& d : dsts) {
      need(d.defined() && d.dtype() == src.dtype() && d.rows() == M, "splitColumns: dtypes or rows differ");
      total += d.cols();
    }
    need(total == C, "splitColumns: column blocks do not add up to the source's columns");
    if (M == 0) return;
    int64_t c0 = 0;
    for (const Tensor& d : dsts) {
      const size_t w = size_t(d.cols()) * es;
      if (w) {
        IVL_CUDA_CHECK(cudaMemcpy2DAsync(d.raw(), w, static_cast<const char*>(src.raw()) + size_t(c0) * es,
                                         size_t(C) * es, w, size_t(M), cudaMemcpyDeviceToDevice, impl_->stream));
      }
      c0 += d.cols();
    }
  });
}

}  // namespace ivl::cuda
