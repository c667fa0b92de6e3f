// Shared scaffolding of the attention kernel lab (llm.c dev/cuda style): device buffers,
// deterministic random fills, a paged-KV builder, fp32 CPU attention reference, error
// statistics with the stated bf16 tolerance, an L2-flushing benchmark timer and JSON lines.
// The lab is a standalone tool: failures throw std::runtime_error to main, which reports and
// returns non-zero.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/bf16.h"

namespace lab {

using bf16 = __nv_bfloat16;

#define LAB_CHECK(call)                                                                    \
  do {                                                                                     \
    cudaError_t e_ = (call);                                                               \
    if (e_ != cudaSuccess)                                                                 \
      throw std::runtime_error(std::string(#call) + ": " + cudaGetErrorString(e_) + " at " + \
                               __FILE__ + ":" + std::to_string(__LINE__));                 \
  } while (0)

// ---- options ------------------------------------------------------------------------------
struct Options {
  bool validate = false;
  bool bench = false;
  bool small = false;   // tiny shapes only (compute-sanitizer runs)
  int reps = 25;
  std::string json;     // JSON lines output (appended)
};

inline Options parseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "validate") o.validate = true;
    else if (a == "bench" || a == "benchmark") o.bench = true;
    else if (a == "--small") o.small = true;
    else if (a == "--reps" && i + 1 < argc) o.reps = std::max(20, atoi(argv[++i]));
    else if (a == "--json" && i + 1 < argc) o.json = argv[++i];
    else {
      fprintf(stderr, "usage: %s [validate] [bench] [--small] [--reps N>=20] [--json FILE]\n", argv[0]);
      exit(2);
    }
  }
  if (!o.validate && !o.bench) o.validate = o.bench = true;
  if (o.small) o.bench = false;
  return o;
}

// ---- JSON lines ---------------------------------------------------------------------------
inline FILE*& jsonFile() {
  static FILE* f = nullptr;
  return f;
}
inline void jsonOpen(const std::string& path) {
  if (!path.empty()) jsonFile() = fopen(path.c_str(), "a");
}
inline void jsonLine(const char* fmt, ...) {
  if (!jsonFile()) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(jsonFile(), fmt, ap);
  va_end(ap);
  fputc('\n', jsonFile());
  fflush(jsonFile());
}

// ---- device --------------------------------------------------------------------------------
struct Device {
  int sms = 0;
  size_t l2 = 0;
  std::string name;
};
inline Device deviceInfo() {
  Device d;
  cudaDeviceProp prop{};
  LAB_CHECK(cudaGetDeviceProperties(&prop, 0));
  d.sms = prop.multiProcessorCount;
  d.l2 = prop.l2CacheSize;
  d.name = prop.name;
  return d;
}

// Roofline ceilings measured on this workplace's H200 (KINDS.md, 2026-10-28).
constexpr double kPeakGBps = 4300.0;    // device-to-device copy, bytes read + written
constexpr double kPeakTflops = 790.0;   // dense bf16 matrix product, random data

template <typename T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  DevBuf() = default;
  explicit DevBuf(size_t count) : n(count) {
    if (count) LAB_CHECK(cudaMalloc(&p, count * sizeof(T)));
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf(DevBuf&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr; o.n = 0; }
  DevBuf& operator=(DevBuf&& o) noexcept {
    std::swap(p, o.p);
    std::swap(n, o.n);
    return *this;
  }
  ~DevBuf() { if (p) cudaFree(p); }
  size_t bytes() const { return n * sizeof(T); }
};

template <typename T>
DevBuf<T> toDevice(const std::vector<T>& h) {
  DevBuf<T> d(h.size());
  if (!h.empty()) LAB_CHECK(cudaMemcpy(d.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <typename T>
std::vector<T> toHost(const T* d, size_t n) {
  std::vector<T> h(n);
  if (n) LAB_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
// bf16 device buffer -> fp32 host values.
inline std::vector<float> toHostF32(const bf16* d, size_t n) {
  std::vector<uint16_t> raw(n);
  if (n) LAB_CHECK(cudaMemcpy(raw.data(), d, n * 2, cudaMemcpyDeviceToHost));
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i) f[i] = ivl::bf16ToF32(raw[i]);
  return f;
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
// Uniform [lo, hi) bf16 values, a pure function of (seed, index): any size, no host work.
__global__ void fillUniformKernel(bf16* p, size_t n, uint64_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint64_t r = splitmix64(seed * 0x100000001b3ull + i);
    const float u = float(r >> 40) * (1.0f / 16777216.0f);
    p[i] = __float2bfloat16_rn(lo + (hi - lo) * u);
  }
}
inline void fillUniform(bf16* p, size_t n, uint64_t seed, float lo, float hi) {
  if (!n) return;
  fillUniformKernel<<<1024, 256>>>(p, n, seed, lo, hi);
  LAB_CHECK(cudaGetLastError());
}
// Poison with bf16 NaN (0xFFFF) so unwritten outputs fail validation.
inline void poison(bf16* p, size_t n) { LAB_CHECK(cudaMemset(p, 0xFF, n * sizeof(bf16))); }

// ---- paged KV for tests -----------------------------------------------------------------------
// Page tables for kv_lens, pages handed out in a shuffled order (as after fragmentation),
// plus `spare` unused pages so that out-of-table writes would show.
struct PagedCache {
  int batch = 0, pageSize = 16, numKvHeads = 0, headDim = 0, numPages = 0;
  std::vector<int> kvLens, indptr, indices, lastPageLen;
  DevBuf<bf16> k, v;              // [numPages, pageSize, numKvHeads, headDim]
  DevBuf<int32_t> dIndptr, dIndices, dLast;
  size_t pageElems() const { return size_t(pageSize) * numKvHeads * headDim; }
  size_t elems() const { return size_t(numPages) * pageElems(); }
  // Offset (elements) of key j, kv head h of sequence b.
  size_t offset(int b, int j, int h) const {
    const int page = indices[indptr[b] + j / pageSize];
    return ((size_t(page) * pageSize + j % pageSize) * numKvHeads + h) * headDim;
  }
};

inline PagedCache makePagedCache(const std::vector<int>& kvLens, int pageSize, int numKvHeads,
                                 int headDim, uint64_t seed, int spare = 3) {
  PagedCache c;
  c.batch = int(kvLens.size());
  c.pageSize = pageSize;
  c.numKvHeads = numKvHeads;
  c.headDim = headDim;
  c.kvLens = kvLens;
  c.indptr.push_back(0);
  for (int len : kvLens) {
    const int pages = (len + pageSize - 1) / pageSize;
    c.indptr.push_back(c.indptr.back() + pages);
    c.lastPageLen.push_back(len == 0 ? 0 : len - (pages - 1) * pageSize);
  }
  const int used = c.indptr.back();
  c.numPages = used + spare;
  std::vector<int> perm(c.numPages);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(perm.begin(), perm.end(), rng);
  c.indices.assign(perm.begin(), perm.begin() + used);
  c.k = DevBuf<bf16>(c.elems());
  c.v = DevBuf<bf16>(c.elems());
  fillUniform(c.k.p, c.elems(), seed * 3 + 1, -1.f, 1.f);
  fillUniform(c.v.p, c.elems(), seed * 3 + 2, -1.f, 1.f);
  c.dIndptr = toDevice(std::vector<int32_t>(c.indptr.begin(), c.indptr.end()));
  c.dIndices = toDevice(std::vector<int32_t>(c.indices.begin(), c.indices.end()));
  c.dLast = toDevice(std::vector<int32_t>(c.lastPageLen.begin(), c.lastPageLen.end()));
  return c;
}

// Gather sequence b's keys into contiguous fp32 [kvLen][numKvHeads][headDim].
inline std::vector<float> gatherSeq(const PagedCache& c, const std::vector<float>& pages, int b) {
  const int len = c.kvLens[b];
  std::vector<float> out(size_t(len) * c.numKvHeads * c.headDim);
  for (int j = 0; j < len; ++j)
    for (int h = 0; h < c.numKvHeads; ++h)
      std::memcpy(&out[(size_t(j) * c.numKvHeads + h) * c.headDim], &pages[c.offset(b, j, h)],
                  c.headDim * sizeof(float));
  return out;
}

// ---- CPU reference --------------------------------------------------------------------------
// Attention of one sequence in fp32, reading the math straight:
//   q   [qoLen][Hq][D], k, v [kvLen][Hkv][D] (row strides in elements), out [qoLen][Hq][D]
//   query i sits at key position i + kvLen - qoLen; causal: it sees keys <= that position.
//   out[i][h] = sum_j softmax_j(scale * q[i][h] . k[j][h/G]) v[j][h/G]
inline void cpuAttention(const float* q, size_t qStride, const float* k, size_t kStride,
                         const float* v, size_t vStride, float* out, int qoLen, int kvLen,
                         int Hq, int Hkv, int D, bool causal, float scale) {
  const int G = Hq / Hkv;
#pragma omp parallel for collapse(2) schedule(dynamic, 4)
  for (int i = 0; i < qoLen; ++i) {
    for (int h = 0; h < Hq; ++h) {
      const float* qi = q + size_t(i) * qStride + size_t(h) * D;
      const int hk = h / G;
      const int last = causal ? std::min(kvLen - 1, i + kvLen - qoLen) : kvLen - 1;
      float* oi = out + (size_t(i) * Hq + h) * D;
      std::vector<float> s(std::max(0, last + 1));
      float mx = -INFINITY;
      for (int j = 0; j <= last; ++j) {
        const float* kj = k + size_t(j) * kStride + size_t(hk) * D;
        float dot = 0.f;
        for (int d = 0; d < D; ++d) dot += qi[d] * kj[d];
        s[j] = dot * scale;
        mx = std::max(mx, s[j]);
      }
      float sum = 0.f;
      for (int j = 0; j <= last; ++j) { s[j] = std::exp(s[j] - mx); sum += s[j]; }
      for (int d = 0; d < D; ++d) oi[d] = 0.f;
      for (int j = 0; j <= last; ++j) {
        const float* vj = v + size_t(j) * vStride + size_t(hk) * D;
        const float w = s[j] / sum;
        for (int d = 0; d < D; ++d) oi[d] += w * vj[d];
      }
    }
  }
}

// ---- error statistics ---------------------------------------------------------------------------
// bf16 tolerance vs the fp32 reference (stated once, used by every validate):
//   max |err| <= 2e-2, mean |err| <= 2e-3, ||err||_2 / ||ref||_2 <= 1e-2, no NaN / Inf.
constexpr double kTolMaxAbs = 2e-2, kTolMeanAbs = 2e-3, kTolRelL2 = 1e-2;

// Elementwise kernels whose output is one rounding of an fp32 value (rope_append) are held to
// a scale-free rule instead: every element within 1 bf16 ulp of the fp64 reference plus 1e-5
// (the fp32 cancellation error of x1*c - x2*s when the result is near 0: run 2 saw 1 element
// in 3e5 miss a bare 1-ulp rule), and rel L2 <= 1e-2 (the absolute limits above assume
// |values| <~ 1).
struct ErrStats {
  double maxAbs = 0, sumAbs = 0, sumSqErr = 0, sumSqRef = 0;
  size_t n = 0, bad = 0;  // bad: NaN/Inf in the result (or, with ulpRule, beyond 1 ulp)
  bool ulpRule = false;
  void add(float ref, float got) {
    ++n;
    if (!std::isfinite(got)) { ++bad; return; }
    const double e = std::fabs(double(got) - ref);
    if (ulpRule) {
      const float a = std::fabs(ref);
      const double ulp = a > 0 ? std::ldexp(1.0, std::ilogb(a) - 7) : 1e-38;  // bf16: 8 bits
      if (e > ulp + 1e-5) ++bad;
    }
    maxAbs = std::max(maxAbs, e);
    sumAbs += e;
    sumSqErr += e * e;
    sumSqRef += double(ref) * ref;
  }
  void merge(const ErrStats& o) {
    ulpRule = ulpRule || o.ulpRule;
    maxAbs = std::max(maxAbs, o.maxAbs);
    sumAbs += o.sumAbs; sumSqErr += o.sumSqErr; sumSqRef += o.sumSqRef; n += o.n; bad += o.bad;
  }
  double meanAbs() const { return n ? sumAbs / n : 0; }
  double relL2() const { return sumSqRef > 0 ? std::sqrt(sumSqErr / sumSqRef) : std::sqrt(sumSqErr); }
  bool ok() const {
    if (ulpRule) return bad == 0 && relL2() <= kTolRelL2;
    return bad == 0 && maxAbs <= kTolMaxAbs && meanAbs() <= kTolMeanAbs && relL2() <= kTolRelL2;
  }
};

// Per case-class summary printed at the end of validate.
struct Tally {
  std::string name;
  ErrStats err;
  int cases = 0, failed = 0;
};
inline Tally& tally(std::vector<Tally>& ts, const std::string& name) {
  for (auto& t : ts) if (t.name == name) return t;
  ts.push_back(Tally{name});
  return ts.back();
}
inline bool report(const char* kernel, const std::string& cls, const std::string& caseName,
                   const ErrStats& e, std::vector<Tally>& ts) {
  Tally& t = tally(ts, cls);
  t.err.merge(e);
  ++t.cases;
  if (!e.ok()) {
    ++t.failed;
    printf("  FAIL %-10s %-40s max %.3e mean %.3e rel %.3e bad %zu / %zu\n", kernel, caseName.c_str(),
           e.maxAbs, e.meanAbs(), e.relL2(), e.bad, e.n);
  }
  jsonLine("{\"kind\":\"validate\",\"kernel\":\"%s\",\"class\":\"%s\",\"case\":\"%s\",\"max_abs\":%.4e,"
           "\"mean_abs\":%.4e,\"rel_l2\":%.4e,\"bad\":%zu,\"n\":%zu,\"ok\":%s}",
           kernel, cls.c_str(), caseName.c_str(), e.maxAbs, e.meanAbs(), e.relL2(), e.bad, e.n,
           e.ok() ? "true" : "false");
  return e.ok();
}
inline int printTallies(const char* kernel, const std::vector<Tally>& ts) {
  int failed = 0;
  printf("%s validate (tolerance: max|err| <= %.0e, mean|err| <= %.0e, rel L2 <= %.0e vs fp32 CPU)\n",
         kernel, kTolMaxAbs, kTolMeanAbs, kTolRelL2);
  for (const auto& t : ts) {
    printf("  %-34s cases %3d  fail %2d  max %.2e  mean %.2e  relL2 %.2e\n", t.name.c_str(), t.cases,
           t.failed, t.err.maxAbs, t.err.meanAbs(), t.err.relL2());
    failed += t.failed;
  }
  printf("%s validate: %s\n", kernel, failed ? "FAILED" : "all passed");
  return failed;
}

// ---- benchmark ----------------------------------------------------------------------------------
// Median of `reps` timed launches (cudaEvent around the launch only), each preceded by a READ of
// a buffer 4x the L2 so that no rep finds the previous rep's data in cache. Not a write (memset):
// that leaves ~60 MB of dirty lines whose write-back lands inside the timed kernel (measured
// 2026-11-28: 40B decode at batch 1, 32k context read 134 MB and looked 25-30% slower).
__global__ void l2FlushReadKernel(const uint4* p, size_t n, unsigned* sink) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;  // practically never: keeps the loads alive
}
struct Timing {
  double medianMs = 0, minMs = 0;
};
class Bencher {
 public:
  explicit Bencher(size_t l2Bytes) : flush_(std::max<size_t>(l2Bytes * 4, 256u << 20)), sink_(1) {
    LAB_CHECK(cudaMemset(flush_.p, 0x5a, flush_.bytes()));
    LAB_CHECK(cudaEventCreate(&a_));
    LAB_CHECK(cudaEventCreate(&b_));
  }
  ~Bencher() {
    cudaEventDestroy(a_);
    cudaEventDestroy(b_);
  }
  Timing time(const std::function<void()>& launch, int reps) {
    for (int i = 0; i < 3; ++i) launch();  // warm-up: module load, attribute setting
    LAB_CHECK(cudaDeviceSynchronize());
    std::vector<float> ms(reps);
    for (int r = 0; r < reps; ++r) {
      l2FlushReadKernel<<<1056, 512>>>(reinterpret_cast<const uint4*>(flush_.p), flush_.bytes() / 16, sink_.p);
      LAB_CHECK(cudaEventRecord(a_));
      launch();
      LAB_CHECK(cudaEventRecord(b_));
      LAB_CHECK(cudaEventSynchronize(b_));
      LAB_CHECK(cudaEventElapsedTime(&ms[r], a_, b_));
    }
    LAB_CHECK(cudaGetLastError());
    std::sort(ms.begin(), ms.end());
    return Timing{ms[reps / 2], ms[0]};
  }

 private:
  DevBuf<unsigned char> flush_;
  DevBuf<unsigned> sink_;
  cudaEvent_t a_{}, b_{};
};

inline std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// Model shapes (SPEC.md §3).
struct HeadCfg {
  const char* model;
  int hq, hkv, d;
};
inline const std::vector<HeadCfg>& llmConfigs() {
  static const std::vector<HeadCfg> c = {
      {"1B", 14, 2, 64},   {"2B", 16, 8, 128},  {"4B", 32, 32, 96}, {"8B", 32, 8, 128},
      {"26B", 48, 8, 128}, {"40B", 56, 8, 128}, {"76B", 64, 8, 128}};
  return c;
}

}  // namespace lab
