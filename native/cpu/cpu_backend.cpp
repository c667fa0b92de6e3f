#include "cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "cpu/simd.h"
#include "runtime/bf16.h"
#include "runtime/f16.h"
#include "runtime/quantize.h"

namespace ivl::cpu {

namespace {

// ---- memory -------------------------------------------------------------------

// Host memory, 64-byte aligned, freed with the last tensor that views it.
class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(size_t bytes) : bytes_(bytes) {
    data_ = bytes ? ::operator new(bytes, std::align_val_t(64)) : nullptr;
  }
  ~HostBuffer() override {
    if (data_) ::operator delete(data_, std::align_val_t(64));
  }
  void* data() const override { return data_; }
  size_t bytes() const override { return bytes_; }

 private:
  void* data_;
  size_t bytes_;
};

// A tensor's bytes inside a memory-mapped checkpoint file (read-only; never written).
class MappedBuffer final : public Buffer {
 public:
  explicit MappedBuffer(const StoredTensor& t) : file_(t.file), data_(t.data), bytes_(t.bytes) {}
  void* data() const override { return const_cast<uint8_t*>(data_); }
  size_t bytes() const override { return bytes_; }

 private:
  std::shared_ptr<MappedFile> file_;  // keeps the mapping alive
  const uint8_t* data_;
  size_t bytes_;
};

void check(bool ok, const char* what) {
  if (!ok) throw Error(ErrorCode::Internal, std::string("cpu backend: ") + what);
}

void checkF32(const Tensor& t, const char* what) { check(t.defined() && t.dtype() == DType::F32, what); }

// Widens n elements of a stored dtype to f32.
void widen(float* dst, const void* src, DType dtype, int64_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  switch (dtype) {
    case DType::F32: std::memcpy(dst, s, size_t(n) * 4); break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = bf16ToF32(h);
      }
      break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = f16ToF32(h);
      }
      break;
    case DType::I32:
    case DType::I8: throw Error(ErrorCode::Internal, "cpu backend: cannot widen an integer tensor to F32");
  }
}

// Row r of a F32 or BF16 matrix as f32 (copied into buf when BF16).
inline const float* rowF32(const Tensor& m, int64_t r, float* buf) {
  const int64_t C = m.cols();
  if (m.dtype() == DType::F32) return m.ptr<float>() + r * C;
  const uint16_t* src = m.ptr<uint16_t>() + r * C;
  for (int64_t i = 0; i < C; ++i) buf[i] = bf16ToF32(src[i]);
  return buf;
}

// Σ a[i]·b[i] in f32 with 8 independent partial sums (vectorizable, fixed order).
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y[r·ldy + c] = x_r · w_c for r < rows, c < cols, K-long rows (x stride ldx, w stride ldw):
// the AVX2 3×4 tile kernel swept over the output. Each output's arithmetic is the same
// wherever it falls in the sweep.
inline void gemmRows(const float* x, int64_t ldx, int64_t rows, const float* w, int64_t ldw, int64_t cols, float* y,
                     int64_t ldy, int64_t K) {
  for (int64_t r = 0; r < rows; r += 3) {
    const int mr = int(std::min<int64_t>(3, rows - r));
    for (int64_t c = 0; c < cols; c += 4) {
      simd::gemmTileF32(x + r * ldx, ldx, w + c * ldw, ldw, y + r * ldy + c, ldy, mr, int(std::min<int64_t>(4, cols - c)), K);
    }
  }
}

// Rows per chunk so that one chunk has at least ~16k elements of work.
inline int64_t rowGrain(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, cols)); }

// Softmax over s[0..n) in place (max-subtracted, f32 exps, double sum).
inline void softmaxInPlace(float* s, int64_t n) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j]);
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - mx);
    sum += s[j];
  }
  const float inv = float(1.0 / sum);
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
}

}  // namespace

// An I8 [N, K] tensor (N = shape[0], K = the rest) with scales [N, G] attached, from
// F32 / BF16 / F16 values: rows widened to f32 one at a time (no full-size temporary) and
// quantized in parallel (each row on its own, so the result does not depend on threads).
Tensor CpuBackend::quantized(const void* src, DType srcDType, const Shape& shape, WeightUse use) {
  const int64_t N = shape.empty() ? 1 : shape[0];
  const int64_t K = N == 0 ? 0 : shapeNumel(shape) / N;
  const int64_t group = use == WeightUse::Int8PerGroup128 ? kInt8Group : std::max<int64_t>(K, 1);
  const int64_t G = int8Groups(K, group);
  Tensor q = alloc(DType::I8, {N, K});       // [N, K] int8
  Tensor scales = alloc(DType::F32, {N, G});  // [N, G] f32
  const uint8_t* in = static_cast<const uint8_t*>(src);
  const size_t rowBytes = size_t(K) * dtypeSize(srcDType);
  int8_t* Q = q.ptr<int8_t>();
  float* S = scales.ptr<float>();
  pool_.parallelFor(N, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(K));  // [K] f32
    for (int64_t r = r0; r < r1; ++r) {
      widen(row.data(), in + size_t(r) * rowBytes, srcDType, K);
      quantizeInt8Rows(row.data(), 1, K, group, Q + r * K, S + r * G);
    }
  }, rowGrain(K));
  q.setScales(std::move(scales), group);
  return q;
}

CpuBackend::CpuBackend(int threads, bool plainKernels) : pool_(threads) {
  const char* k = std::getenv("INTERNVL_CPU_KERNELS");
  simd_ = simd::available() && !plainKernels && !(k && std::strcmp(k, "plain") == 0);
}

std::string CpuBackend::describe() const {
  return std::string("cpu, ") + (simd_ ? "avx2+fma" : "plain") + " kernels, " + std::to_string(pool_.size()) +
         " thread" + (pool_.size() == 1 ? "" : "s");
}

// ---- memory ---------------------------------------------------------------------

Tensor CpuBackend::alloc(DType dtype, const Shape& shape) {
  for (int64_t d : shape) check(d >= 0, "negative dimension in alloc");
  size_t bytes = size_t(shapeNumel(shape)) * dtypeSize(dtype);
  if (faults_.shouldFail(FaultKind::OutOfMemory)) {
    throw Error(ErrorCode::OutOfMemory, "host allocation of " + std::to_string(bytes) + " bytes for a " +
                                            shapeString(shape) + " tensor failed (injected by the fault hook)");
  }
  return Tensor(std::make_shared<HostBuffer>(bytes), dtype, shape);
}

Tensor CpuBackend::weight(const StoredTensor& src, WeightUse use) {
  check(src.floatDType.has_value(), "weight() needs a float tensor");
  const DType dt = *src.floatDType;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(src.data);
  if (isInt8Use(use)) return quantized(src.data, dt, src.shape, use);  // bf16 widened exactly, then quantized
  // Matrices in BF16 or F32 are used straight from the mapping when aligned.
  if (use == WeightUse::Matrix && (dt == DType::BF16 || dt == DType::F32) && addr % dtypeSize(dt) == 0) {
    return Tensor(std::make_shared<MappedBuffer>(src), dt, src.shape);
  }
  if (use == WeightUse::Matrix && dt == DType::BF16) {  // unaligned: copy, still BF16
    Tensor t = alloc(DType::BF16, src.shape);
    std::memcpy(t.raw(), src.data, src.bytes);
    return t;
  }
  Tensor t = alloc(DType::F32, src.shape);  // [numel] f32
  widen(t.ptr<float>(), src.data, dt, src.numel());
  return t;
}

Tensor CpuBackend::weightFromHost(const void* data, DType hostDType, const Shape& shape, WeightUse use) {
  check(hostDType == DType::F32 || hostDType == DType::BF16, "weightFromHost takes F32 or BF16");
  if (isInt8Use(use)) return quantized(data, hostDType, shape, use);
  if (use == WeightUse::Matrix && hostDType == DType::BF16) {
    Tensor t = alloc(DType::BF16, shape);
    std::memcpy(t.raw(), data, t.nbytes());
    return t;
  }
  Tensor t = alloc(DType::F32, shape);
  widen(t.ptr<float>(), data, hostDType, t.numel());
  return t;
}

Tensor CpuBackend::uploadF32(const float* data, const Shape& shape) {
  Tensor t = alloc(DType::F32, shape);
  if (t.nbytes()) std::memcpy(t.raw(), data, t.nbytes());
  return t;
}

void CpuBackend::downloadF32(const Tensor& t, float* out) {
  checkF32(t, "downloadF32 needs an F32 tensor");
  if (t.nbytes()) std::memcpy(out, t.raw(), t.nbytes());
}

// ---- dense math -------------------------------------------------------------------

void CpuBackend::matmul(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) {
  const int64_t M = x.rows(), K = x.cols(), N = w.rows();
  checkF32(x, "matmul: x must be F32");
  checkF32(y, "matmul: y must be F32");
  check(w.dtype() == DType::F32 || w.dtype() == DType::BF16 || (w.dtype() == DType::I8 && w.hasScales()),
        "matmul: w must be F32, BF16 or I8 with scales");
  check(w.cols() == K && y.rows() == M && y.cols() == N, "matmul: shape mismatch");
  check(!bias || (bias->dtype() == DType::F32 && bias->numel() == N), "matmul: bias must be F32 [N]");
  if (M == 0 || N == 0) return;

  const float* X = x.ptr<float>();  // [M, K]
  float* Y = y.ptr<float>();        // [M, N]
  const float* B = bias ? bias->ptr<float>() : nullptr;

  // Tiles of kNB weight rows × kMB input rows; consecutive tiles share their weight rows,
  // so a BF16 block is widened once per chunk and reused across the input rows.
  constexpr int64_t kNB = 16, kMB = 64;
  const int64_t nBlocks = (N + kNB - 1) / kNB, mBlocks = (M + kMB - 1) / kMB;
  const bool bf16 = w.dtype() == DType::BF16;
  const bool fast = simd_;
  if (w.dtype() == DType::I8) return matmulI8(y, x, w, bias);
  pool_.parallelFor(nBlocks * mBlocks, [&](int64_t t0, int64_t t1) {
    std::vector<float> wbuf(bf16 ? size_t(kNB * K) : 0);  // [kNB, K] widened weight rows
    int64_t widened = -1;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t nb = t / mBlocks, mb = t % mBlocks;
      const int64_t n0 = nb * kNB, n1 = std::min(N, n0 + kNB);
      const int64_t m0 = mb * kMB, m1 = std::min(M, m0 + kMB);
      if (fast) {
        // AVX2: 3×4 register tiles. Few input rows: widen BF16 in registers; many: widen the
        // block once. Both give the same bits (widening is exact, the FMA order is the same).
        const bool packed = bf16 && m1 - m0 >= 16;
        if (packed && widened != nb) {
          simd::widenBf16(wbuf.data(), w.ptr<uint16_t>() + n0 * K, (n1 - n0) * K);
          widened = nb;
        }
        for (int64_t m = m0; m < m1; m += 3) {
          const int mr = int(std::min<int64_t>(3, m1 - m));
          for (int64_t n = n0; n < n1; n += 4) {
            const int nr = int(std::min<int64_t>(4, n1 - n));
            if (packed) {
              simd::gemmTileF32(X + m * K, K, wbuf.data() + (n - n0) * K, K, Y + m * N + n, N, mr, nr, K);
            } else if (bf16) {
              simd::gemmTileBf16(X + m * K, K, w.ptr<uint16_t>() + n * K, K, Y + m * N + n, N, mr, nr, K);
            } else {
              simd::gemmTileF32(X + m * K, K, w.ptr<float>() + n * K, K, Y + m * N + n, N, mr, nr, K);
            }
          }
        }
        if (B) {
          for (int64_t m = m0; m < m1; ++m) {
            for (int64_t n = n0; n < n1; ++n) Y[m * N + n] += B[n];
          }
        }
        continue;
      }
      // Plain reference loops.
      const float* W;  // rows n0..n1 as f32 [n1-n0, K]
      if (bf16) {
        if (widened != nb) {
          const uint16_t* src = w.ptr<uint16_t>() + n0 * K;
          for (int64_t i = 0; i < (n1 - n0) * K; ++i) wbuf[i] = bf16ToF32(src[i]);
          widened = nb;
        }
        W = wbuf.data();
      } else {
        W = w.ptr<float>() + n0 * K;
      }
      for (int64_t m = m0; m < m1; ++m) {
        const float* xr = X + m * K;
        float* yr = Y + m * N;
        for (int64_t n = n0; n < n1; ++n) {
          float acc = dot(xr, W + (n - n0) * K, K);
          yr[n] = B ? acc + B[n] : acc;
        }
      }
    }
  });
}

// W8A16 on the CPU: the same blocking as the F32/BF16 path; AVX2 dequantizes the int8
// weights (q · scale in fp32) in registers inside the 3×4 tile kernel, the plain loops
// dequantize a 16-row block into an f32 panel once per chunk; fp32 accumulation.
void CpuBackend::matmulI8(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) {
  const int64_t M = x.rows(), K = x.cols(), N = w.rows();
  const Tensor& sc = w.scales();
  const int64_t G = sc.cols(), group = w.scaleGroup();
  check(sc.dtype() == DType::F32 && sc.rows() == N && G == int8Groups(K, group) && (group % 8 == 0 || group >= K),
        "matmul: bad int8 scales");
  const float* X = x.ptr<float>();     // [M, K]
  float* Y = y.ptr<float>();           // [M, N]
  const int8_t* Q = w.ptr<int8_t>();   // [N, K]
  const float* S = sc.ptr<float>();    // [N, G]
  const float* B = bias ? bias->ptr<float>() : nullptr;
  constexpr int64_t kNB = 16, kMB = 64;
  const int64_t nBlocks = (N + kNB - 1) / kNB, mBlocks = (M + kMB - 1) / kMB;
  const bool fast = simd_;
  pool_.parallelFor(nBlocks * mBlocks, [&](int64_t t0, int64_t t1) {
    std::vector<float> wbuf(fast ? 0 : size_t(kNB * K));  // [kNB, K] dequantized weight rows (plain)
    int64_t widened = -1;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t nb = t / mBlocks, mb = t % mBlocks;
      const int64_t n0 = nb * kNB, n1 = std::min(N, n0 + kNB);
      const int64_t m0 = mb * kMB, m1 = std::min(M, m0 + kMB);
      if (fast) {
        // Every row count takes the in-register kernel: one operation order for each output
        // whatever M (a dequantized panel + gemmTileF32 differs in the last bit on K % 8 tails).
        for (int64_t m = m0; m < m1; m += 3) {
          const int mr = int(std::min<int64_t>(3, m1 - m));
          for (int64_t n = n0; n < n1; n += 4) {
            const int nr = int(std::min<int64_t>(4, n1 - n));
            simd::gemmTileI8(X + m * K, K, Q + n * K, K, S + n * G, G, group, Y + m * N + n, N, mr, nr, K);
          }
        }
        if (B) {
          for (int64_t m = m0; m < m1; ++m) {
            for (int64_t n = n0; n < n1; ++n) Y[m * N + n] += B[n];
          }
        }
        continue;
      }
      // Plain reference: dequantize the block, then the F32 loops.
      if (widened != nb) {
        for (int64_t r = n0; r < n1; ++r) {
          for (int64_t k = 0; k < K; ++k) wbuf[size_t((r - n0) * K + k)] = float(Q[r * K + k]) * S[r * G + k / group];
        }
        widened = nb;
      }
      for (int64_t m = m0; m < m1; ++m) {
        const float* xr = X + m * K;
        float* yr = Y + m * N;
        for (int64_t n = n0; n < n1; ++n) {
          float acc = dot(xr, wbuf.data() + (n - n0) * K, K);
          yr[n] = B ? acc + B[n] : acc;
        }
      }
    }
  });
}

void CpuBackend::layerNorm(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const int64_t M = x.rows(), C = x.cols();
  checkF32(x, "layerNorm: x must be F32");
  check(y.rows() == M && y.cols() == C && w.numel() == C && b.numel() == C, "layerNorm: shape mismatch");
  const float* X = x.ptr<float>();
  float* Y = y.ptr<float>();
  const float* W = w.ptr<float>();
  const float* Bv = b.ptr<float>();
  pool_.parallelFor(M, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = X + r * C;
      float* yr = Y + r * C;
      double mean = 0;
      for (int64_t i = 0; i < C; ++i) mean += xr[i];
      mean /= double(C);
      double var = 0;
      for (int64_t i = 0; i < C; ++i) var += (xr[i] - mean) * (xr[i] - mean);
      var /= double(C);
      const float m = float(mean), rstd = float(1.0 / std::sqrt(var + eps));
      for (int64_t i = 0; i < C; ++i) yr[i] = (xr[i] - m) * rstd * W[i] + Bv[i];
    }
  }, rowGrain(C));
}

void CpuBackend::rmsNorm(const Tensor& y, const Tensor& x, const Tensor& w, double eps) {
  const int64_t M = x.rows(), C = x.cols();
  checkF32(x, "rmsNorm: x must be F32");
  check(y.rows() == M && y.cols() == C && w.numel() == C, "rmsNorm: shape mismatch");
  const float* X = x.ptr<float>();
  float* Y = y.ptr<float>();
  const float* W = w.ptr<float>();
  pool_.parallelFor(M, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = X + r * C;
      float* yr = Y + r * C;
      double ss = 0;
      for (int64_t i = 0; i < C; ++i) ss += double(xr[i]) * xr[i];
      const float rstd = float(1.0 / std::sqrt(ss / double(C) + eps));
      for (int64_t i = 0; i < C; ++i) yr[i] = W[i] * (xr[i] * rstd);
    }
  }, rowGrain(C));
}

void CpuBackend::gelu(const Tensor& y, const Tensor& x) {
  check(x.numel() == y.numel(), "gelu: shape mismatch");
  const float* X = x.ptr<float>();
  float* Y = y.ptr<float>();
  pool_.parallelFor(x.numel(), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) Y[i] = X[i] * 0.5f * (1.0f + std::erf(X[i] * float(M_SQRT1_2)));
  }, 16384);
}

void CpuBackend::siluMul(const Tensor& y, const Tensor& gate, const Tensor& up) {
  check(gate.numel() == y.numel() && up.numel() == y.numel(), "siluMul: shape mismatch");
  const float* G = gate.ptr<float>();
  const float* U = up.ptr<float>();
  float* Y = y.ptr<float>();
  pool_.parallelFor(y.numel(), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) Y[i] = G[i] / (1.0f + std::exp(-G[i])) * U[i];
  }, 16384);
}

void CpuBackend::siluMulHalves(const Tensor& y, const Tensor& gu) {
  const int64_t M = y.rows(), F = y.cols();
  check(gu.rows() == M && gu.cols() == 2 * F, "siluMulHalves: shape mismatch");
  const float* GU = gu.ptr<float>();
  float* Y = y.ptr<float>();
  pool_.parallelFor(M, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* G = GU + r * 2 * F;
      const float* U = G + F;
      for (int64_t i = 0; i < F; ++i) Y[r * F + i] = G[i] / (1.0f + std::exp(-G[i])) * U[i];
    }
  }, rowGrain(F));
}

void CpuBackend::add(const Tensor& y, const Tensor& a, const Tensor& b) {
  check(a.numel() == y.numel() && b.numel() == y.numel(), "add: shape mismatch");
  const float* A = a.ptr<float>();
  const float* Bv = b.ptr<float>();
  float* Y = y.ptr<float>();
  pool_.parallelFor(y.numel(), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) Y[i] = A[i] + Bv[i];
  }, 16384);
}

void CpuBackend::addScaled(const Tensor& y, const Tensor& x, const Tensor& s) {
  const int64_t M = y.rows(), C = y.cols();
  check(x.rows() == M && x.cols() == C && s.numel() == C, "addScaled: shape mismatch");
  const float* X = x.ptr<float>();
  const float* S = s.ptr<float>();
  float* Y = y.ptr<float>();
  pool_.parallelFor(M, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t i = 0; i < C; ++i) Y[r * C + i] += X[r * C + i] * S[i];
    }
  }, rowGrain(C));
}

// ---- rows -------------------------------------------------------------------------

void CpuBackend::embedding(const Tensor& y, const Tensor& table, const std::vector<int32_t>& ids) {
  const int64_t V = table.rows(), H = table.cols();
  check(y.rows() == int64_t(ids.size()) && y.cols() == H, "embedding: shape mismatch");
  for (int32_t id : ids) {
    if (id < 0 || id >= V) {
      throw Error(ErrorCode::InvalidArg,
                  "token id " + std::to_string(id) + " is out of range for a vocabulary of " + std::to_string(V));
    }
  }
  float* Y = y.ptr<float>();
  pool_.parallelFor(int64_t(ids.size()), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const void* src = static_cast<const char*>(table.raw()) + size_t(ids[t]) * size_t(H) * dtypeSize(table.dtype());
      widen(Y + t * H, src, table.dtype(), H);
    }
  }, rowGrain(H));
}

void CpuBackend::scatterRows(const Tensor& dst, const std::vector<int64_t>& rows, const Tensor& src) {
  const int64_t C = dst.cols();
  check(src.cols() == C && src.rows() >= int64_t(rows.size()), "scatterRows: shape mismatch");
  for (size_t i = 0; i < rows.size(); ++i) {
    check(rows[i] >= 0 && rows[i] < dst.rows(), "scatterRows: row out of range");
    std::memcpy(dst.ptr<float>() + rows[i] * C, src.ptr<float>() + int64_t(i) * C, size_t(C) * 4);
  }
}

void CpuBackend::gatherRows(const Tensor& dst, const Tensor& src, const std::vector<int64_t>& rows) {
  const int64_t C = src.cols();
  check(dst.cols() == C && dst.rows() == int64_t(rows.size()), "gatherRows: shape mismatch");
  for (size_t i = 0; i < rows.size(); ++i) {
    check(rows[i] >= 0 && rows[i] < src.rows(), "gatherRows: row out of range");
    std::memcpy(dst.ptr<float>() + int64_t(i) * C, src.ptr<float>() + rows[i] * C, size_t(C) * 4);
  }
}

void CpuBackend::splitColumns(const std::vector<Tensor>& dsts, const Tensor& src) {
  const int64_t M = src.rows(), C = src.cols();
  int64_t total = 0;
  for (const Tensor& d : dsts) {
    check(d.rows() == M, "splitColumns: row counts differ");
    total += d.cols();
  }
  check(total == C, "splitColumns: column blocks do not add up to the source's columns");
  int64_t c0 = 0;
  for (const Tensor& d : dsts) {
    const int64_t w = d.cols();
    for (int64_t r = 0; r < M; ++r) std::memcpy(d.ptr<float>() + r * w, src.ptr<float>() + r * C + c0, size_t(w) * 4);
    c0 += w;
  }
}

// ---- attention --------------------------------------------------------------------

void CpuBackend::rope(const Tensor& x, int64_t nHeads, const Tensor& cos, const Tensor& sin) {
  const int64_t T = cos.rows(), half = cos.cols(), D = 2 * half;
  check(x.numel() == T * nHeads * D && sin.rows() == T && sin.cols() == half, "rope: shape mismatch");
  float* X = x.ptr<float>();
  const float* Cs = cos.ptr<float>();
  const float* Sn = sin.ptr<float>();
  pool_.parallelFor(T, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* c = Cs + t * half;
      const float* s = Sn + t * half;
      for (int64_t h = 0; h < nHeads; ++h) {
        float* v = X + (t * nHeads + h) * D;
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * c[i] - b * s[i];
          v[i + half] = b * c[i] + a * s[i];
        }
      }
    }
  });
}

void CpuBackend::attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, int64_t groups,
                           int64_t nHeads, double scale) {
  const int64_t rows = q.rows(), C = q.cols(), D = C / nHeads, N = groups ? rows / groups : 0;
  check(groups > 0 && N * groups == rows && D * nHeads == C, "attention: shape mismatch");
  check(k.rows() == rows && v.rows() == rows && out.rows() == rows && k.cols() == C && v.cols() == C &&
            out.cols() == C,
        "attention: q/k/v/out shapes differ");
  const float* Q = q.ptr<float>();
  const float* Kp = k.ptr<float>();
  const float* Vp = v.ptr<float>();
  float* O = out.ptr<float>();
  const float sc = float(scale);

  if (simd_) {
    // Per (group, head, block of kQB queries), as two GEMMs on the tile kernel:
    //   S[qb, N] = (q·scale)[qb, D] · K_hᵀ      softmax per row
    //   O[qb, D] = S[qb, N] · V_h[N, D]         with V_h transposed to Vt[D, N]
    constexpr int64_t kQB = 48;
    const int64_t qBlocks = (N + kQB - 1) / kQB;
    pool_.parallelFor(groups * nHeads * qBlocks, [&](int64_t j0, int64_t j1) {
      std::vector<float> qs(static_cast<size_t>(kQB * D));  // [kQB, D] scaled queries
      std::vector<float> S(static_cast<size_t>(kQB * N));   // [kQB, N] scores -> probabilities
      std::vector<float> Vt(static_cast<size_t>(D * N));    // [D, N] values of head h, transposed
      int64_t vtFor = -1;
      for (int64_t job = j0; job < j1; ++job) {
        const int64_t gh = job / qBlocks, g = gh / nHeads, h = gh % nHeads, qb = job % qBlocks;
        const int64_t i0 = qb * kQB, n = std::min(N, i0 + kQB) - i0;
        const float* Kh = Kp + g * N * C + h * D;  // row j at Kh + j·C
        if (vtFor != gh) {
          for (int64_t j = 0; j < N; ++j) {
            const float* vj = Vp + (g * N + j) * C + h * D;
            for (int64_t e = 0; e < D; ++e) Vt[e * N + j] = vj[e];
          }
          vtFor = gh;
        }
        for (int64_t i = 0; i < n; ++i) {
          const float* qi = Q + (g * N + i0 + i) * C + h * D;
          for (int64_t e = 0; e < D; ++e) qs[i * D + e] = qi[e] * sc;  // (q · scale) · kᵀ, as InternViT does
        }
        gemmRows(qs.data(), D, n, Kh, C, N, S.data(), N, D);
        for (int64_t i = 0; i < n; ++i) softmaxInPlace(S.data() + i * N, N);
        gemmRows(S.data(), N, n, Vt.data(), N, D, O + (g * N + i0) * C + h * D, C, N);
      }
    });
    return;
  }

  constexpr int64_t kQB = 16;  // queries per task
  const int64_t qBlocks = (N + kQB - 1) / kQB;
  pool_.parallelFor(groups * nHeads * qBlocks, [&](int64_t j0, int64_t j1) {
    std::vector<float> qs(static_cast<size_t>(D)), scores(static_cast<size_t>(N));
    for (int64_t job = j0; job < j1; ++job) {
      const int64_t g = job / (nHeads * qBlocks);
      const int64_t h = (job / qBlocks) % nHeads;
      const int64_t qb = job % qBlocks;
      for (int64_t i = qb * kQB; i < std::min(N, qb * kQB + kQB); ++i) {
        const float* qi = Q + (g * N + i) * C + h * D;
        for (int64_t e = 0; e < D; ++e) qs[e] = qi[e] * sc;  // (q · scale) · kᵀ, as InternViT does
        for (int64_t j = 0; j < N; ++j) scores[j] = dot(qs.data(), Kp + (g * N + j) * C + h * D, D);
        softmaxInPlace(scores.data(), N);
        float* oi = O + (g * N + i) * C + h * D;
        std::fill(oi, oi + D, 0.0f);
        for (int64_t j = 0; j < N; ++j) {
          const float p = scores[j];
          const float* vj = Vp + (g * N + j) * C + h * D;
          for (int64_t e = 0; e < D; ++e) oi[e] += p * vj[e];
        }
      }
    }
  });
}

void CpuBackend::kvWrite(const KvLayer& layer, const Tensor& k, const Tensor& v, const PagedBatch& batch) {
  const int64_t T = batch.numTokens();
  const int64_t rowElems = layer.k.numel() / (layer.k.dim(0) * layer.k.dim(1));  // numKvHeads · D
  const int64_t capacity = layer.k.dim(0) * layer.k.dim(1);
  check(k.rows() == T && v.rows() == T && k.cols() == rowElems && v.cols() == rowElems, "kvWrite: shape mismatch");
  for (int64_t t = 0; t < T; ++t) {
    const int64_t slot = batch.slots[t];
    check(slot >= 0 && slot < capacity, "kvWrite: slot out of range");
    std::memcpy(layer.k.ptr<float>() + slot * rowElems, k.ptr<float>() + t * rowElems, size_t(rowElems) * 4);
    std::memcpy(layer.v.ptr<float>() + slot * rowElems, v.ptr<float>() + t * rowElems, size_t(rowElems) * 4);
  }
}

void CpuBackend::pagedAttention(const Tensor& out, const Tensor& q, const KvLayer& layer, const PagedBatch& batch,
                                int64_t nHeads, int64_t nKvHeads, double scale) {
  const int64_t T = batch.numTokens(), B = batch.numSequences(), bs = batch.blockSize;
  const int64_t D = q.cols() / nHeads, group = nHeads / nKvHeads;
  check(q.rows() == T && out.rows() == T && out.cols() == q.cols() && D * nHeads == q.cols(),
        "pagedAttention: shape mismatch");
  check(layer.k.dim(1) == bs && layer.k.dim(2) == nKvHeads && layer.k.dim(3) == D, "pagedAttention: cache layout");
  for (int64_t b = 0; b < B; ++b) {
    for (int32_t t = batch.qoIndptr[b]; t < batch.qoIndptr[b + 1]; ++t) {
      check(batch.positions[t] + 1 <= batch.kvLength(b), "pagedAttention: query position beyond the cached tokens");
    }
  }
  const float* Q = q.ptr<float>();
  const float* Kc = layer.k.ptr<float>();  // [numBlocks, bs, KV, D]
  const float* Vc = layer.v.ptr<float>();
  float* O = out.ptr<float>();
  const float sc = float(scale);
  const int64_t C = q.cols(), rowStride = nKvHeads * D;  // between consecutive tokens of a page

  if (simd_) {
    // Per (sequence, kv head, block of kQB of its queries): the rows are (query, q head of
    // the group) pairs, R = n·group. Keys are read page by page (rows are contiguous
    // within a page), values gathered transposed; both products use the tile kernel.
    // A block's query set depends only on its own sequence, never on the batch.
    constexpr int64_t kQB = 16;
    std::vector<int64_t> jobSeq, jobStart;  // (sequence, first query row) of each job
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = batch.qoIndptr[b]; t < batch.qoIndptr[b + 1]; t += kQB) {
        jobSeq.push_back(b);
        jobStart.push_back(t);
      }
    }
    const int64_t nJobs = int64_t(jobSeq.size());
    pool_.parallelFor(nJobs * nKvHeads, [&](int64_t j0, int64_t j1) {
      std::vector<float> qs, S, Vt, os;
      for (int64_t job = j0; job < j1; ++job) {
        const int64_t jb = job / nKvHeads, kvh = job % nKvHeads, b = jobSeq[size_t(jb)];
        const int64_t t0 = jobStart[size_t(jb)], n = std::min<int64_t>(batch.qoIndptr[b + 1] - t0, kQB);
        const int64_t R = n * group;
        int64_t L = 0;  // keys any query of the block sees
        for (int64_t i = 0; i < n; ++i) L = std::max<int64_t>(L, batch.positions[t0 + i] + 1);
        const int32_t* pages = batch.kvIndices.data() + batch.kvIndptr[b];
        qs.resize(size_t(R * D));  // [R, D] row i·group + hh = q of token t0+i, head kvh·group + hh
        S.resize(size_t(R * L));   // [R, L]
        Vt.resize(size_t(D * L));  // [D, L]
        os.resize(size_t(R * D));  // [R, D]
        for (int64_t i = 0; i < n; ++i) {
          std::memcpy(qs.data() + i * group * D, Q + (t0 + i) * C + kvh * group * D, size_t(group * D) * 4);
        }
        for (int64_t p = 0; p * bs < L; ++p) {  // scores, one page of keys at a time
          const int64_t j0p = p * bs, nk = std::min(bs, L - j0p);
          const float* kp = Kc + (int64_t(pages[p]) * bs * nKvHeads + kvh) * D;
          gemmRows(qs.data(), D, R, kp, rowStride, nk, S.data() + j0p, L, D);
          const float* vp = Vc + (int64_t(pages[p]) * bs * nKvHeads + kvh) * D;
          for (int64_t j = 0; j < nk; ++j) {
            for (int64_t e = 0; e < D; ++e) Vt[e * L + j0p + j] = vp[j * rowStride + e];
          }
        }
        for (int64_t r = 0; r < R; ++r) {  // causal softmax over each row's own prefix
          float* sr = S.data() + r * L;
          const int64_t len = int64_t(batch.positions[t0 + r / group]) + 1;
          for (int64_t j = 0; j < len; ++j) sr[j] *= sc;
          softmaxInPlace(sr, len);
          std::fill(sr + len, sr + L, 0.0f);
        }
        gemmRows(S.data(), L, R, Vt.data(), L, D, os.data(), D, L);
        for (int64_t i = 0; i < n; ++i) {
          std::memcpy(O + (t0 + i) * C + kvh * group * D, os.data() + i * group * D, size_t(group * D) * 4);
        }
      }
    });
    return;
  }

  // Plain: one (token, head) per job. Sequence of each query row from the CSR qoIndptr.
  std::vector<int32_t> seqOf(static_cast<size_t>(T));
  for (int64_t b = 0; b < B; ++b) {
    for (int32_t t = batch.qoIndptr[b]; t < batch.qoIndptr[b + 1]; ++t) seqOf[t] = int32_t(b);
  }
  pool_.parallelFor(T * nHeads, [&](int64_t j0, int64_t j1) {
    std::vector<float> scores;
    for (int64_t job = j0; job < j1; ++job) {
      const int64_t t = job / nHeads, h = job % nHeads, kvh = h / group;
      const int64_t b = seqOf[t];
      const int64_t len = int64_t(batch.positions[t]) + 1;  // causal: positions 0..p
      const int32_t* pages = batch.kvIndices.data() + batch.kvIndptr[b];
      scores.resize(size_t(len));
      const float* qt = Q + t * C + h * D;
      for (int64_t j = 0; j < len; ++j) {
        const int64_t slot = int64_t(pages[j / bs]) * bs + j % bs;
        scores[j] = dot(qt, Kc + (slot * nKvHeads + kvh) * D, D) * sc;
      }
      softmaxInPlace(scores.data(), len);
      float* ot = O + t * C + h * D;
      std::fill(ot, ot + D, 0.0f);
      for (int64_t j = 0; j < len; ++j) {
        const int64_t slot = int64_t(pages[j / bs]) * bs + j % bs;
        const float p = scores[j];
        const float* vj = Vc + (slot * nKvHeads + kvh) * D;
        for (int64_t e = 0; e < D; ++e) ot[e] += p * vj[e];
      }
    }
  });
}

// ---- vision -----------------------------------------------------------------------

void CpuBackend::patchify(const Tensor& out, const Tensor& pixels, int64_t p) {
  const int64_t T = pixels.dim(0), S = pixels.dim(2), G = S / p;
  check(pixels.rank() == 4 && pixels.dim(1) == 3 && pixels.dim(3) == S && G * p == S, "patchify: pixels shape");
  check(out.rows() == T * G * G && out.cols() == 3 * p * p, "patchify: out shape");
  const float* P = pixels.ptr<float>();  // [T, 3, S, S]
  float* O = out.ptr<float>();           // [T·G·G, 3·p·p]
  pool_.parallelFor(T * G * G, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t t = row / (G * G), r = (row / G) % G, c = row % G;
      float* o = O + row * 3 * p * p;
      for (int64_t ch = 0; ch < 3; ++ch) {
        for (int64_t ky = 0; ky < p; ++ky) {
          const float* src = P + ((t * 3 + ch) * S + (r * p + ky)) * S + c * p;
          std::memcpy(o + (ch * p + ky) * p, src, size_t(p) * 4);
        }
      }
    }
  });
}

void CpuBackend::vitEmbed(const Tensor& out, const Tensor& patches, const Tensor& cls, const Tensor& pos) {
  const int64_t T = out.dim(0), N = out.dim(1), C = out.dim(2), G2 = N - 1;
  check(patches.rows() == T * G2 && patches.cols() == C && cls.numel() == C && pos.numel() == N * C,
        "vitEmbed: shape mismatch");
  const float* Pa = patches.ptr<float>();
  const float* Cl = cls.ptr<float>();
  const float* Po = pos.ptr<float>();
  float* O = out.ptr<float>();
  pool_.parallelFor(T * N, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t t = row / N, i = row % N;
      const float* src = i == 0 ? Cl : Pa + (t * G2 + i - 1) * C;
      const float* pe = Po + i * C;
      float* o = O + row * C;
      for (int64_t c = 0; c < C; ++c) o[c] = src[c] + pe[c];
    }
  }, rowGrain(C));
}

void CpuBackend::pixelShuffle(const Tensor& out, const Tensor& x, int64_t grid, int64_t s) {
  const int64_t T = x.dim(0), C = x.dim(2), G2 = grid / s;
  check(x.dim(1) == 1 + grid * grid && G2 * s == grid, "pixelShuffle: input shape");
  check(out.dim(0) == T && out.dim(1) == G2 * G2 && out.dim(2) == s * s * C, "pixelShuffle: output shape");
  const float* X = x.ptr<float>();  // [T, 1 + G², C]
  float* O = out.ptr<float>();      // [T, (G/s)², s²·C]
  pool_.parallelFor(T * G2 * G2, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t t = row / (G2 * G2), r2 = (row / G2) % G2, c2 = row % G2;
      for (int64_t j = 0; j < s; ++j) {
        for (int64_t k = 0; k < s; ++k) {
          const int64_t cell = (s * r2 + j) * grid + (s * c2 + k);
          std::memcpy(O + row * s * s * C + (j * s + k) * C, X + (t * (1 + grid * grid) + 1 + cell) * C,
                      size_t(C) * 4);
        }
      }
    }
  });
}

}  // namespace ivl::cpu
