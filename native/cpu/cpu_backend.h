// The CPU reference backend: every op in plain fp32 loops over host memory,
// parallel over rows / heads with a thread pool. Weights may stay BF16 (widened
// on the fly inside matmul) or be int8 quantized at load (W8A16: dequantized on the
// fly inside matmul, fp32 accumulation); activations are F32.
#pragma once
#include <memory>

#include "cpu/thread_pool.h"
#include "runtime/backend.h"
#include "runtime/fault_injection.h"

namespace ivl::cpu {

class CpuBackend final : public Backend {
 public:
  // threads <= 0: all cores. The AVX2 kernels are used when the CPU has them, unless
  // plainKernels is set or the environment variable INTERNVL_CPU_KERNELS is "plain".
  explicit CpuBackend(int threads, bool plainKernels = false);

  const char* name() const override { return "cpu"; }
  std::string describe() const override;
  DType activationDType() const override { return DType::F32; }
  bool supportsInt8() const override { return true; }
  int threads() const { return pool_.size(); }
  bool simd() const { return simd_; }

  // Test hook: its "oom-after=N" plans fail alloc() (activations, scratch) with ERR_OOM.
  FaultInjector* faultInjector() override { return &faults_; }

  Tensor alloc(DType dtype, const Shape& shape) override;
  Tensor weight(const StoredTensor& src, WeightUse use) override;
  Tensor weightFromHost(const void* data, DType hostDType, const Shape& shape, WeightUse use) override;
  Tensor uploadF32(const float* data, const Shape& shape) override;
  void downloadF32(const Tensor& t, float* out) override;

  void matmul(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) override;
  void layerNorm(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, double eps) override;
  void rmsNorm(const Tensor& y, const Tensor& x, const Tensor& w, double eps) override;
  void gelu(const Tensor& y, const Tensor& x) override;
  void siluMul(const Tensor& y, const Tensor& gate, const Tensor& up) override;
  void siluMulHalves(const Tensor& y, const Tensor& gu) override;
  void add(const Tensor& y, const Tensor& a, const Tensor& b) override;
  void addScaled(const Tensor& y, const Tensor& x, const Tensor& s) override;

  void embedding(const Tensor& y, const Tensor& table, const std::vector<int32_t>& ids) override;
  void scatterRows(const Tensor& dst, const std::vector<int64_t>& rows, const Tensor& src) override;
  void gatherRows(const Tensor& dst, const Tensor& src, const std::vector<int64_t>& rows) override;
  void splitColumns(const std::vector<Tensor>& dsts, const Tensor& src) override;

  void rope(const Tensor& x, int64_t nHeads, const Tensor& cos, const Tensor& sin) override;
  void attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, int64_t groups, int64_t nHeads,
                 double scale) override;
  void kvWrite(const KvLayer& layer, const Tensor& k, const Tensor& v, const PagedBatch& batch) override;
  void pagedAttention(const Tensor& out, const Tensor& q, const KvLayer& layer, const PagedBatch& batch,
                      int64_t nHeads, int64_t nKvHeads, double scale) override;

  void patchify(const Tensor& out, const Tensor& pixels, int64_t patch) override;
  void vitEmbed(const Tensor& out, const Tensor& patches, const Tensor& cls, const Tensor& pos) override;
  void pixelShuffle(const Tensor& out, const Tensor& x, int64_t grid, int64_t scale) override;

 private:
  // I8 [N, K] with attached scales from F32/BF16/F16 values (runtime/quantize.h numerics).
  Tensor quantized(const void* src, DType srcDType, const Shape& shape, WeightUse use);
  void matmulI8(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias);

  ThreadPool pool_;
  FaultInjector faults_;
  bool simd_;  // AVX2/FMA kernels (cpu/simd.h) instead of the plain loops
};

}  // namespace ivl::cpu
