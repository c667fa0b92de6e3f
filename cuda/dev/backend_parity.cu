// Backend parity harness: every op of ivl::Backend run on the CPU reference backend (fp32)
// and on the CUDA backend (bf16 activations) with the same random inputs, compared element
// by element. Inputs are rounded to bf16 values on the host first, so both backends start
// from identical numbers and the differences are the CUDA backend's own roundings
// (bf16 outputs and the bf16 intermediates PyTorch also has) and fp32 summation order.
//
// Build and run on the GPU machine: cuda/dev/backend_parity.sh [--small] [--json FILE]
//   --small   tiny shapes only (for compute-sanitizer)
//   --poison  only the sticky-error test (a separate process: it poisons the CUDA context)
//
// Error figures per case:
//   max_abs   max |gpu − cpu|
//   max_rel   max |gpu − cpu| / max(|cpu|, 0.01·rms(cpu))
//   rms_rel   rms(gpu − cpu) / rms(cpu)
// A case passes when every element has |gpu − cpu| <= rtol·|cpu| + atol·rms(cpu) (rtol 2^-6,
// atol 2^-7 unless stated: a few bf16 roundings).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cuda_backend.h"
#include "runtime/bf16.h"
#include "runtime/f16.h"

using namespace ivl;
using ivl::cuda::CudaBackend;

namespace {

float roundBf16(float v) { return bf16ToF32(f32ToBf16(v)); }

uint16_t f32ToF16(float f) {  // round to nearest even, normal range only (test data)
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = int32_t((x >> 23) & 0xff) - 127 + 15;
  uint32_t man = x & 0x7fffffu;
  if (exp <= 0) return uint16_t(sign);  // flush tiny values (not generated)
  uint32_t h = sign | (uint32_t(exp) << 10) | (man >> 13);
  const uint32_t rest = man & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return uint16_t(h);
}

struct Options {
  bool small = false;
  bool poison = false;
  std::string json;
};

struct Pair {
  Tensor c;  // CPU (F32)
  Tensor g;  // CUDA (BF16)
};

struct Harness {
  cpu::CpuBackend cpu{0};
  CudaBackend gpu;
  CudaBackend gpuGeneric;  // every attention on the generic kernel
  std::mt19937 rng{1234};
  FILE* json = nullptr;
  int failures = 0;
  int cases = 0;

  Harness() : gpu(makeOpts(false)), gpuGeneric(makeOpts(true)) {}
  static cuda::CudaBackendOptions makeOpts(bool generic) {
    cuda::CudaBackendOptions o;
    o.genericAttention = generic;
    return o;
  }

  std::vector<float> randn(int64_t n, float scale = 1.0f, float mean = 0.0f) {
    std::normal_distribution<float> d(mean, scale);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = roundBf16(d(rng));
    return v;
  }

  Pair act(const Shape& s, const std::vector<float>& host, Backend& g) {
    return {cpu.uploadF32(host.data(), s), g.uploadF32(host.data(), s)};
  }
  Pair act(const Shape& s, float scale = 1.0f) { return act(s, randn(shapeNumel(s), scale), gpu); }
  Pair empty(const Shape& s, Backend& g) { return {cpu.alloc(DType::F32, s), g.alloc(DType::BF16, s)}; }
  Pair empty(const Shape& s) { return empty(s, gpu); }
  Pair vecW(const std::vector<float>& host, Backend& g) {
    const Shape s{int64_t(host.size())};
    return {cpu.weightFromHost(host.data(), DType::F32, s, WeightUse::Vector),
            g.weightFromHost(host.data(), DType::F32, s, WeightUse::Vector)};
  }
  Pair vecW(int64_t n, float scale = 1.0f, float mean = 0.0f) { return vecW(randn(n, scale, mean), gpu); }
  Pair matW(int64_t rows, int64_t cols, float scale) {
    std::vector<float> f = randn(rows * cols, scale);
    std::vector<uint16_t> b(f.size());
    for (size_t i = 0; i < f.size(); ++i) b[i] = f32ToBf16(f[i]);
    const Shape s{rows, cols};
    return {cpu.weightFromHost(b.data(), DType::BF16, s, WeightUse::Matrix),
            gpu.weightFromHost(b.data(), DType::BF16, s, WeightUse::Matrix)};
  }

  std::vector<float> down(Backend& be, const Tensor& t) {
    std::vector<float> v(size_t(t.numel()));
    be.downloadF32(t, v.data());
    return v;
  }

  void report(const std::string& op, const std::string& shape, const std::string& path, const std::vector<float>& got,
              const std::vector<float>& ref, double rtol = 1.0 / 64, double atol = 1.0 / 128) {
    ++cases;
    double ss = 0;
    for (float r : ref) ss += double(r) * r;
    const double rms = ref.empty() ? 0 : std::sqrt(ss / double(ref.size()));
    double maxAbs = 0, maxRel = 0, se = 0;
    bool pass = got.size() == ref.size();
    size_t worst = 0;
    for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
      const double d = std::fabs(double(got[i]) - double(ref[i]));
      if (!(d == d)) {  // NaN
        pass = false;
        maxAbs = INFINITY;
        continue;
      }
      se += d * d;
      if (d > maxAbs) {
        maxAbs = d;
        worst = i;
      }
      maxRel = std::max(maxRel, d / std::max(std::fabs(double(ref[i])), 0.01 * rms));
      if (d > rtol * std::fabs(double(ref[i])) + atol * rms) pass = false;
    }
    const double rmsRel = rms > 0 ? std::sqrt(se / double(ref.size())) / rms : std::sqrt(se);
    if (!pass) ++failures;
    printf("%-4s %-22s %-30s %-16s max_abs %.3e  max_rel %.3e  rms_rel %.3e\n", pass ? "ok" : "FAIL", op.c_str(),
           shape.c_str(), path.c_str(), maxAbs, maxRel, rmsRel);
    if (!pass && !got.empty()) {
      printf("      worst at %zu: gpu %.6g cpu %.6g (rms %.4g)\n", worst, got[worst], ref[worst], rms);
    }
    fflush(stdout);
    if (json) {
      fprintf(json,
              "{\"op\":\"%s\",\"shape\":\"%s\",\"path\":\"%s\",\"max_abs\":%.6e,\"max_rel\":%.6e,\"rms_rel\":%.6e,"
              "\"pass\":%s}\n",
              op.c_str(), shape.c_str(), path.c_str(), maxAbs, maxRel, rmsRel, pass ? "true" : "false");
    }
  }
  void compare(const std::string& op, const std::string& shape, const Pair& p, double rtol = 1.0 / 64,
               double atol = 1.0 / 128, const std::string& path = "", Backend* g = nullptr) {
    report(op, shape, path, down(g ? *g : gpu, p.g), down(cpu, p.c), rtol, atol);
  }
  void expect(bool ok, const std::string& what) {
    ++cases;
    if (!ok) ++failures;
    printf("%-4s %s\n", ok ? "ok" : "FAIL", what.c_str());
    fflush(stdout);
  }
};

std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t x : d) s += (s.empty() ? "" : "x") + std::to_string(x);
  return s;
}

// ---- cases ---------------------------------------------------------------------------------

void testMemory(Harness& h) {
  // uploadF32 / downloadF32 round trip is exact on bf16 values.
  std::vector<float> v = h.randn(3 * 1001, 3.0f);
  Tensor t = h.gpu.uploadF32(v.data(), {3, 1001});
  h.report("upload/download", "3x1001", "", h.down(h.gpu, t), v, 0, 0);

  // weight(): F16 / F32 / BF16 sources, matrix (-> BF16) and vector (-> F32) uses.
  const int64_t R = 37, Cc = 53, n = R * Cc;
  std::vector<float> src = h.randn(n, 2.0f);
  std::vector<uint16_t> f16(static_cast<size_t>(n)), b16(static_cast<size_t>(n));
  std::vector<float> f16Val(static_cast<size_t>(n)), f32Val(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    f16[size_t(i)] = f32ToF16(src[size_t(i)] * 1.37f);
    f16Val[size_t(i)] = f16ToF32(f16[size_t(i)]);
    f32Val[size_t(i)] = src[size_t(i)] * 1.37f + 1e-3f;
    b16[size_t(i)] = f32ToBf16(src[size_t(i)]);
  }
  auto stored = [&](const char* name, DType dt, const void* data, size_t es) {
    StoredTensor s;
    s.name = name;
    s.dtypeName = dtypeName(dt);
    s.floatDType = dt;
    s.shape = {R, Cc};
    s.data = static_cast<const uint8_t*>(data);
    s.bytes = size_t(n) * es;
    return s;
  };
  std::vector<float> asBf16(static_cast<size_t>(n));
  for (const auto& [dt, data, es, vals] :
       std::vector<std::tuple<DType, const void*, size_t, const std::vector<float>*>>{
           {DType::F16, f16.data(), 2, &f16Val}, {DType::F32, f32Val.data(), 4, &f32Val}, {DType::BF16, b16.data(), 2, &src}}) {
    for (int64_t i = 0; i < n; ++i) asBf16[size_t(i)] = roundBf16((*vals)[size_t(i)]);
    StoredTensor st = stored("w", dt, data, es);
    Tensor m = h.gpu.weight(st, WeightUse::Matrix);
    h.expect(m.dtype() == DType::BF16, std::string("weight(") + dtypeName(dt) + ", Matrix) is BF16");
    h.report("weight Matrix", std::string(dtypeName(dt)) + " 37x53", "", h.down(h.gpu, m), asBf16, 0, 0);
    Tensor vv = h.gpu.weight(st, WeightUse::Vector);
    h.expect(vv.dtype() == DType::F32, std::string("weight(") + dtypeName(dt) + ", Vector) is F32");
    h.report("weight Vector", std::string(dtypeName(dt)) + " 37x53", "", h.down(h.gpu, vv), *vals, 0, 0);
  }

  // Errors: ERR_OOM names sizes; bad token ids are InvalidArg.
  try {
    h.gpu.alloc(DType::BF16, {int64_t(1) << 46});
    h.expect(false, "alloc of 128 TiB throws ERR_OOM");
  } catch (const Error& e) {
    h.expect(e.code() == ErrorCode::OutOfMemory, std::string("alloc of 128 TiB throws ERR_OOM: ") + e.what());
  }
  h.expect(!h.gpu.poisoned(), "an OOM does not poison the backend");
  try {
    Tensor tab = h.gpu.alloc(DType::BF16, {10, 8});
    Tensor y = h.gpu.alloc(DType::BF16, {1, 8});
    h.gpu.embedding(y, tab, {10});
    h.expect(false, "embedding of id 10 in a 10-row table throws");
  } catch (const Error& e) {
    h.expect(e.code() == ErrorCode::InvalidArg, std::string("bad token id -> ERR_INVALID_ARG: ") + e.what());
  }
}

void testMatmul(Harness& h, int64_t M, int64_t N, int64_t K, bool bias, bool sliced = false) {
  Pair x = h.act({M, K});
  const float ws = 1.0f / std::sqrt(float(K));
  Pair w, b;
  if (sliced) {  // rows N..2N of a [3N, K] matrix, bias a slice of a [3N] vector (qkv style)
    Pair w3 = h.matW(3 * N, K, ws);
    Pair b3 = h.vecW(3 * N, 0.5f);
    w = {w3.c.slice0(N, N), w3.g.slice0(N, N)};
    b = {b3.c.slice0(N, N), b3.g.slice0(N, N)};
  } else {
    w = h.matW(N, K, ws);
    b = h.vecW(N, 0.5f);
  }
  Pair y = h.empty({M, N});
  h.cpu.matmul(y.c, x.c, w.c, bias ? &b.c : nullptr);
  h.gpu.matmul(y.g, x.g, w.g, bias ? &b.g : nullptr);
  h.compare("matmul", dims({M, N, K}) + (bias ? "+b" : "") + (sliced ? " slice" : ""), y);
}

void testMatmulLooseBias(Harness& h) {
  // An F32 bias that is not a weight (no mirror): converted per call.
  const int64_t M = 9, N = 40, K = 24;
  Pair x = h.act({M, K});
  Pair w = h.matW(N, K, 0.2f);
  std::vector<float> bh = h.randn(N);
  Tensor bc = h.cpu.weightFromHost(bh.data(), DType::F32, {N}, WeightUse::Vector);
  Tensor bg = h.gpu.alloc(DType::F32, {N});
  h.gpu.synchronize();
  cudaMemcpy(bg.raw(), bh.data(), size_t(N) * 4, cudaMemcpyHostToDevice);
  cudaDeviceSynchronize();  // the backend's stream does not wait for the legacy stream
  Pair y = h.empty({M, N});
  h.cpu.matmul(y.c, x.c, w.c, &bc);
  h.gpu.matmul(y.g, x.g, w.g, &bg);
  h.compare("matmul", dims({M, N, K}) + "+b(alloc)", y);
}

void testNorms(Harness& h, int64_t M, int64_t C, bool rms, bool alias, double eps) {
  Pair x = h.act({M, C}, 2.0f);
  Pair w = h.vecW(C, 0.3f, 1.0f), b = h.vecW(C, 0.2f);
  Pair y = alias ? x : h.empty({M, C});
  if (rms) {
    h.cpu.rmsNorm(y.c, x.c, w.c, eps);
    h.gpu.rmsNorm(y.g, x.g, w.g, eps);
  } else {
    h.cpu.layerNorm(y.c, x.c, w.c, b.c, eps);
    h.gpu.layerNorm(y.g, x.g, w.g, b.g, eps);
  }
  h.compare(rms ? "rmsNorm" : "layerNorm", dims({M, C}) + (alias ? " y=x" : ""), y);
}

void testElementwise(Harness& h, int64_t n) {
  {
    Pair x = h.act({n}, 2.0f), y = h.empty({n});
    h.cpu.gelu(y.c, x.c);
    h.gpu.gelu(y.g, x.g);
    h.compare("gelu", dims({n}), y);
    h.cpu.gelu(x.c, x.c);
    h.gpu.gelu(x.g, x.g);
    h.compare("gelu", dims({n}) + " y=x", x);
  }
  {
    Pair g = h.act({n}, 2.0f), u = h.act({n}, 1.0f), y = h.empty({n});
    h.cpu.siluMul(y.c, g.c, u.c);
    h.gpu.siluMul(y.g, g.g, u.g);
    h.compare("siluMul", dims({n}), y);
    h.cpu.siluMul(g.c, g.c, u.c);
    h.gpu.siluMul(g.g, g.g, u.g);
    h.compare("siluMul", dims({n}) + " y=gate", g);
  }
  {
    Pair a = h.act({n}), b = h.act({n}), y = h.empty({n});
    h.cpu.add(y.c, a.c, b.c);
    h.gpu.add(y.g, a.g, b.g);
    h.compare("add", dims({n}), y);
    h.cpu.add(a.c, a.c, b.c);
    h.gpu.add(a.g, a.g, b.g);
    h.compare("add", dims({n}) + " y=a", a);
  }
}

void testAddScaled(Harness& h, int64_t M, int64_t C) {
  Pair y = h.act({M, C}, 2.0f), x = h.act({M, C});
  Pair s = h.vecW(C, 0.3f);
  h.cpu.addScaled(y.c, x.c, s.c);
  h.gpu.addScaled(y.g, x.g, s.g);
  h.compare("addScaled", dims({M, C}), y);
}

void testRows(Harness& h, int64_t V, int64_t H, int64_t T) {
  // embedding from a BF16 table
  std::vector<float> tf = h.randn(V * H);
  std::vector<uint16_t> tb(tf.size());
  for (size_t i = 0; i < tf.size(); ++i) tb[i] = f32ToBf16(tf[i]);
  Tensor tc = h.cpu.weightFromHost(tb.data(), DType::BF16, {V, H}, WeightUse::Matrix);
  Tensor tg = h.gpu.weightFromHost(tb.data(), DType::BF16, {V, H}, WeightUse::Matrix);
  std::vector<int32_t> ids(static_cast<size_t>(T));
  std::uniform_int_distribution<int32_t> pick(0, int32_t(V - 1));
  for (auto& id : ids) id = pick(h.rng);
  ids[0] = 0;
  ids[size_t(T - 1)] = int32_t(V - 1);
  Pair y = h.empty({T, H});
  h.cpu.embedding(y.c, tc, ids);
  h.gpu.embedding(y.g, tg, ids);
  h.compare("embedding", dims({V, H, T}), y, 0, 0);

  // scatter then gather through a permutation
  const int64_t R = 2 * T + 3;
  std::vector<int64_t> perm(static_cast<size_t>(R));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), h.rng);
  perm.resize(static_cast<size_t>(T));
  Pair dst = h.act({R, H});
  h.cpu.scatterRows(dst.c, perm, y.c);
  h.gpu.scatterRows(dst.g, perm, y.g);
  h.compare("scatterRows", dims({R, H, T}), dst, 0, 0);
  Pair back = h.empty({T, H});
  std::reverse(perm.begin(), perm.end());
  h.cpu.gatherRows(back.c, dst.c, perm);
  h.gpu.gatherRows(back.g, dst.g, perm);
  h.compare("gatherRows", dims({R, H, T}), back, 0, 0);
}

void testRope(Harness& h, int64_t T, int64_t nHeads, int64_t D) {
  const int64_t half = D / 2;
  std::vector<float> cs(static_cast<size_t>(T * half)), sn(static_cast<size_t>(T * half));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const float inv = 1.0f / std::pow(10000.0f, float(2 * i) / float(D));
      cs[size_t(t * half + i)] = roundBf16(std::cos(float(t * 7 + 3) * inv));
      sn[size_t(t * half + i)] = roundBf16(std::sin(float(t * 7 + 3) * inv));
    }
  }
  Pair c = h.act({T, half}, cs, h.gpu), s = h.act({T, half}, sn, h.gpu);
  Pair x = h.act({T, nHeads * D});
  h.cpu.rope(x.c, nHeads, c.c, s.c);
  h.gpu.rope(x.g, nHeads, c.g, s.g);
  h.compare("rope", dims({T, nHeads, D}), x);
}

void testVitAttention(Harness& h, int64_t groups, int64_t N, int64_t nHeads, int64_t D) {
  const int64_t rows = groups * N, C = nHeads * D;
  const double scale = 1.0 / std::sqrt(double(D));
  std::vector<float> qh = h.randn(rows * C, 1.5f), kh = h.randn(rows * C, 1.5f), vh = h.randn(rows * C);
  for (CudaBackend* g : {&h.gpu, &h.gpuGeneric}) {
    Pair q = h.act({rows, C}, qh, *g), k = h.act({rows, C}, kh, *g), v = h.act({rows, C}, vh, *g);
    Pair o = h.empty({rows, C}, *g);
    h.cpu.attention(o.c, q.c, k.c, v.c, groups, nHeads, scale);
    g->attention(o.g, q.g, k.g, v.g, groups, nHeads, scale);
    h.compare("attention", dims({groups, N, nHeads, D}), o, 1.0 / 64, 1.0 / 64,
              cuda::attentionPathName(g->lastAttentionPath()), g);
    if (g == &h.gpu && g->lastAttentionPath() != cuda::AttentionPath::Dense) break;  // already generic
  }
}

struct Seq {
  int64_t ctx, add;
};

void testPaged(Harness& h, const char* label, int64_t nHeads, int64_t nKv, int64_t D, int64_t bs,
               const std::vector<Seq>& seqs) {
  const int64_t B = int64_t(seqs.size());
  int64_t pagesTotal = 0, Tall = 0, Tq = 0;
  for (const Seq& s : seqs) {
    pagesTotal += (s.ctx + s.add + bs - 1) / bs;
    Tall += s.ctx + s.add;
    Tq += s.add;
  }
  const int64_t numBlocks = pagesTotal + 3;
  std::vector<int32_t> pageIds(static_cast<size_t>(numBlocks));
  std::iota(pageIds.begin(), pageIds.end(), 0);
  std::shuffle(pageIds.begin(), pageIds.end(), h.rng);

  // Cache write of every token of every sequence; the step's batch for the new tokens.
  PagedBatch all, step;
  all.blockSize = step.blockSize = bs;
  step.qoIndptr = {0};
  step.kvIndptr = {0};
  size_t nextPage = 0;
  std::vector<int64_t> stepRowsInAll;  // row of each query token within `all`
  for (const Seq& s : seqs) {
    const int64_t len = s.ctx + s.add, pages = (len + bs - 1) / bs;
    std::vector<int32_t> mine(pageIds.begin() + int64_t(nextPage), pageIds.begin() + int64_t(nextPage) + pages);
    nextPage += size_t(pages);
    for (int64_t j = 0; j < len; ++j) {
      const int64_t slot = int64_t(mine[size_t(j / bs)]) * bs + j % bs;
      all.slots.push_back(slot);
      all.positions.push_back(int32_t(j));
      if (j >= s.ctx) {
        stepRowsInAll.push_back(int64_t(all.slots.size()) - 1);
        step.slots.push_back(slot);
        step.positions.push_back(int32_t(j));
      }
    }
    step.kvIndices.insert(step.kvIndices.end(), mine.begin(), mine.end());
    step.kvIndptr.push_back(int32_t(step.kvIndices.size()));
    step.kvLastPageLen.push_back(int32_t(len - (pages - 1) * bs));
    step.qoIndptr.push_back(int32_t(step.positions.size()));
  }
  (void)B;
  std::vector<float> kh = h.randn(Tall * nKv * D, 1.5f), vh = h.randn(Tall * nKv * D);
  std::vector<float> qh = h.randn(Tq * nHeads * D, 1.5f);
  const double scale = 1.0 / std::sqrt(double(D));
  const std::string shape = std::string(label) + " " + dims({nHeads, nKv, D});
  for (CudaBackend* g : {&h.gpu, &h.gpuGeneric}) {
    Pair k = h.act({Tall, nKv * D}, kh, *g), v = h.act({Tall, nKv * D}, vh, *g);
    KvLayer lc{h.cpu.alloc(DType::F32, {numBlocks, bs, nKv, D}), h.cpu.alloc(DType::F32, {numBlocks, bs, nKv, D})};
    KvLayer lg{g->alloc(DType::BF16, {numBlocks, bs, nKv, D}), g->alloc(DType::BF16, {numBlocks, bs, nKv, D})};
    // Unwritten cache rows hold NaN on the GPU: a kernel that reads past a sequence's keys
    // without masking them shows up as NaN.
    g->synchronize();
    cudaMemset(lg.k.raw(), 0xff, lg.k.nbytes());
    cudaMemset(lg.v.raw(), 0xff, lg.v.nbytes());
    cudaDeviceSynchronize();
    h.cpu.kvWrite(lc, k.c, v.c, all);
    g->kvWrite(lg, k.g, v.g, all);
    if (g == &h.gpu) {  // kvWrite itself: the written rows, exactly
      std::vector<float> kc = h.down(h.cpu, lc.k), kg = h.down(*g, lg.k);
      std::vector<float> rc, rg;
      const int64_t row = nKv * D;
      for (int64_t slot : all.slots) {
        rc.insert(rc.end(), kc.begin() + slot * row, kc.begin() + (slot + 1) * row);
        rg.insert(rg.end(), kg.begin() + slot * row, kg.begin() + (slot + 1) * row);
      }
      h.report("kvWrite", shape, "", rg, rc, 0, 0);
    }
    Pair q = h.act({Tq, nHeads * D}, qh, *g);
    Pair o = h.empty({Tq, nHeads * D}, *g);
    h.cpu.pagedAttention(o.c, q.c, lc, step, nHeads, nKv, scale);
    g->pagedAttention(o.g, q.g, lg, step, nHeads, nKv, scale);
    h.compare("pagedAttention", shape, o, 1.0 / 64, 1.0 / 64, cuda::attentionPathName(g->lastAttentionPath()), g);
    if (g == &h.gpu && g->lastAttentionPath() == cuda::AttentionPath::GenericPaged) break;
  }
}

void testVision(Harness& h, int64_t T, int64_t S, int64_t p, int64_t C, int64_t scale) {
  const int64_t G = S / p;
  Pair px = h.act({T, 3, S, S});
  Pair patches = h.empty({T * G * G, 3 * p * p});
  h.cpu.patchify(patches.c, px.c, p);
  h.gpu.patchify(patches.g, px.g, p);
  h.compare("patchify", dims({T, S, p}), patches, 0, 0);

  Pair pe = h.act({T * G * G, C});
  Pair cls = h.vecW(C, 0.5f), pos = h.vecW((1 + G * G) * C, 0.5f);
  Pair x = h.empty({T, 1 + G * G, C});
  h.cpu.vitEmbed(x.c, pe.c, cls.c, pos.c);
  h.gpu.vitEmbed(x.g, pe.g, cls.g, pos.g);
  h.compare("vitEmbed", dims({T, 1 + G * G, C}), x);

  const int64_t G2 = G / scale;
  Pair xs = h.act({T, 1 + G * G, C});
  Pair sh = h.empty({T, G2 * G2, scale * scale * C});
  h.cpu.pixelShuffle(sh.c, xs.c, G, scale);
  h.gpu.pixelShuffle(sh.g, xs.g, G, scale);
  h.compare("pixelShuffle", dims({T, G, scale, C}), sh, 0, 0);
}

// The allocator reaches a steady state: a repeated step does no cudaMalloc.
void testSteadyState(Harness& h) {
  const int64_t M = 33, C = 64, F = 176;
  Pair w1 = h.matW(F, C, 0.1f), w2 = h.matW(C, F, 0.1f);
  Pair nw = h.vecW(C, 0.1f, 1.0f);
  std::vector<float> xh = h.randn(M * C);
  uint64_t after1 = 0, after20 = 0;
  for (int it = 0; it < 20; ++it) {
    Tensor x = h.gpu.uploadF32(xh.data(), {M, C});
    Tensor a = h.gpu.alloc(DType::BF16, {M, C});
    Tensor f = h.gpu.alloc(DType::BF16, {M, F});
    Tensor r = h.gpu.alloc(DType::BF16, {M, C});
    h.gpu.rmsNorm(a, x, nw.g, 1e-6);
    h.gpu.matmul(f, a, w1.g, nullptr);
    h.gpu.gelu(f, f);
    h.gpu.matmul(r, f, w2.g, nullptr);
    h.gpu.add(x, x, r);
    h.gpu.embedding(a, w1.g.view({F * C / C, C}), {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                                                   18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 0});
    if (it == 0) after1 = h.gpu.memoryStats().deviceMallocs;
  }
  h.gpu.synchronize();
  after20 = h.gpu.memoryStats().deviceMallocs;
  const auto st = h.gpu.memoryStats();
  h.expect(after20 == after1, "steady state: no cudaMalloc after the first step (" + std::to_string(after1) + " -> " +
                                  std::to_string(after20) + " device mallocs, " + std::to_string(st.cacheHits) +
                                  " cache hits, " + std::to_string(st.cachedBytes) + " B cached)");
}

int runPoison() {
  int failures = 0;
  try {
    CudaBackend g;
    Tensor t = g.alloc(DType::BF16, {16});
    try {
      g.injectFaultForTesting();
      printf("FAIL injected fault did not throw\n");
      ++failures;
    } catch (const Error& e) {
      const bool ok = e.code() == ErrorCode::Cuda && g.poisoned();
      printf("%-4s injected fault -> ERR_CUDA, backend poisoned: %s\n", ok ? "ok" : "FAIL", e.what());
      failures += ok ? 0 : 1;
    }
    try {
      g.alloc(DType::BF16, {16});
      printf("FAIL a call after poisoning did not throw\n");
      ++failures;
    } catch (const Error& e) {
      const bool ok = e.code() == ErrorCode::Cuda;
      printf("%-4s later call refused: %s\n", ok ? "ok" : "FAIL", e.what());
      failures += ok ? 0 : 1;
    }
  } catch (const std::exception& e) {
    printf("FAIL poison test: %s\n", e.what());
    ++failures;
  }
  printf("poison: %s\n", failures ? "FAILED" : "passed");
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--small") opt.small = true;
    else if (a == "--poison") opt.poison = true;
    else if (a == "--json" && i + 1 < argc) opt.json = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--small] [--poison] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  if (opt.poison) return runPoison();
  try {
    Harness h;
    if (!opt.json.empty()) h.json = fopen(opt.json.c_str(), "w");
    const bool S = opt.small;

    testMemory(h);

    testMatmul(h, 7, 48, 16, true);
    testMatmul(h, 5, 40, 24, false);
    testMatmul(h, 1, 64, 64, true);
    testMatmul(h, 6, 16, 48, true, true);
    testMatmulLooseBias(h);
    if (!S) {
      testMatmul(h, 1025, 1024, 1024, true);
      testMatmul(h, 256, 896, 4096, true);
      testMatmul(h, 1, 4864, 896, false);
      testMatmul(h, 37, 151, 64, false);
      testMatmul(h, 300, 3200, 3200, false);
      testMatmul(h, 129, 1024, 1024, true, true);
      testMatmul(h, 3, 32000, 896, false);
    }

    for (bool rms : {false, true}) {
      testNorms(h, 5, 48, rms, false, 1e-6);
      testNorms(h, 3, 100, rms, true, 1e-5);
      testNorms(h, 4, 1200, rms, false, 1e-6);
      if (!S) {
        testNorms(h, 1025, 1024, rms, true, 1e-6);
        testNorms(h, 256, 4096, rms, false, 1e-5);
        testNorms(h, 64, 12800, rms, true, 1e-5);
        testNorms(h, 7, 3200, rms, false, 1e-6);
      }
    }

    testElementwise(h, 1001);
    testElementwise(h, 4096);
    if (!S) testElementwise(h, int64_t(1) << 20);
    testAddScaled(h, 5, 48);
    testAddScaled(h, 3, 37);
    if (!S) testAddScaled(h, 1025, 1024);

    testRows(h, 100, 64, 33);
    testRows(h, 50, 7, 9);
    if (!S) testRows(h, 32000, 896, 257);

    testRope(h, 9, 4, 16);
    testRope(h, 5, 2, 64);
    if (!S) {
      testRope(h, 300, 14, 64);
      testRope(h, 77, 32, 128);
    }

    testVitAttention(h, 2, 17, 4, 16);
    testVitAttention(h, 2, 65, 3, 16);
    testVitAttention(h, 1, 70, 2, 64);
    if (!S) {
      testVitAttention(h, 2, 1025, 16, 64);
      testVitAttention(h, 1, 1025, 25, 128);
      testVitAttention(h, 3, 257, 8, 96);
    }

    const std::vector<Seq> prefill{{0, 7}, {5, 1}, {37, 20}, {16, 16}};
    const std::vector<Seq> decode{{0, 1}, {15, 1}, {16, 1}, {100, 1}, {513, 1}};
    testPaged(h, "prefill", 4, 2, 16, 16, prefill);
    testPaged(h, "decode", 4, 2, 16, 16, decode);
    testPaged(h, "prefill", 14, 2, 64, 16, {{0, 7}, {5, 1}, {37, 20}});
    testPaged(h, "decode", 14, 2, 64, 16, {{0, 1}, {20, 1}, {70, 1}});
    if (!S) {
      testPaged(h, "prefill", 14, 2, 64, 16, prefill);
      testPaged(h, "decode", 14, 2, 64, 16, decode);
      testPaged(h, "prefill", 32, 8, 128, 16, prefill);
      testPaged(h, "decode", 32, 8, 128, 16, decode);
      testPaged(h, "prefill", 32, 32, 96, 16, prefill);
      testPaged(h, "decode", 32, 32, 96, 16, decode);
      testPaged(h, "prefill", 16, 8, 128, 16, {{0, 300}, {200, 129}});
      testPaged(h, "decode-long", 56, 8, 128, 16, {{3000, 1}, {1200, 1}, {70, 1}});
      testPaged(h, "prefill bs7", 4, 2, 64, 7, prefill);
    }

    testVision(h, 2, 28, 14, 48, 2);
    if (!S) testVision(h, 2, 448, 14, 1024, 2);

    testSteadyState(h);

    const auto st = h.gpu.memoryStats();
    printf("memory: in use %zu B, cached %zu B, weights %zu B, peak %zu B, %llu cudaMalloc, %llu cache hits\n",
           st.inUseBytes, st.cachedBytes, st.weightBytes, st.peakInUseBytes, (unsigned long long)st.deviceMallocs,
           (unsigned long long)st.cacheHits);
    printf("%d cases, %d failures\n", h.cases, h.failures);
    if (h.json) fclose(h.json);
    return h.failures ? 1 : 0;
  } catch (const std::exception& e) {
    printf("FATAL: %s\n", e.what());
    return 1;
  }
}
