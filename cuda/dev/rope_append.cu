// Kernel lab: rope_append — NeoX rotary embedding on q (in place) and k, and the append of
// k', v into the paged KV cache at each token's position.
//   build: make -C cuda/dev   run: cuda/dev/build/rope_append [validate] [bench] [--small]
// Versions:
//   v1  one thread per (token, head, frequency i < D/2): its own binary search and sincosf,
//       scalar bf16 loads/stores. Kept as the simple baseline (sincosf per head: 9x the
//       trigonometry of v2 at 56 q + 8 k heads).
//   v2  production (cuda/rope_append.cu): CTA per (token, group of 8 heads), cos/sin once per
//       CTA into shared memory, bf16x2 rotation, 16-byte v copies. (First cut, one CTA per token:
//       40B decode of 32 tokens took 13.3 us vs v1's 8.1 us: too few CTAs. Prefill 3328 tokens
//       40.1 us = 71% of 4.3 TB/s.)
#include "../rope_append.cu"
#include "common.h"

using namespace lab;
using ivl::cuda::PagedKV;

// ---- v1 -----------------------------------------------------------------------------------------
__global__ void ropeAppendV1(bf16* q, int64_t qStride, const bf16* k, int64_t kStride, const bf16* v,
                             int64_t vStride, int tokens, int Hq, int Hkv, int D, int batch,
                             const int* qoIndptr, const int* positions, const float* invFreq,
                             float scaling, bf16* kPages, bf16* vPages, const int* kvIndptr,
                             const int* kvIndices, int pageSize) {
  const int half = D / 2, heads = Hq + 2 * Hkv;
  const int64_t n = int64_t(tokens) * heads * half;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int i = int(idx % half);
    const int head = int((idx / half) % heads);
    const int t = int(idx / (int64_t(half) * heads));
    int b = 0;
    while (b + 1 < batch && qoIndptr[b + 1] <= t) ++b;  // linear: the baseline
    const int pos = positions[t];
    const int64_t row =
        (int64_t(kvIndices[kvIndptr[b] + pos / pageSize]) * pageSize + pos % pageSize) * Hkv * D;
    if (head >= Hq + Hkv) {  // v: copy
      const int hv = head - Hq - Hkv;
      vPages[row + hv * D + i] = v[t * vStride + hv * D + i];
      vPages[row + hv * D + i + half] = v[t * vStride + hv * D + i + half];
      continue;
    }
    float s, c;
    sincosf(float(pos) * invFreq[i], &s, &c);
    c *= scaling;
    s *= scaling;
    const bf16* src = head < Hq ? q + t * qStride + head * D : k + t * kStride + (head - Hq) * D;
    bf16* dst = head < Hq ? q + t * qStride + head * D : kPages + row + (head - Hq) * D;
    const float x1 = __bfloat162float(src[i]), x2 = __bfloat162float(src[i + half]);
    dst[i] = __float2bfloat16_rn(x1 * c - x2 * s);
    dst[i + half] = __float2bfloat16_rn(x2 * c + x1 * s);
  }
}

struct RopeCase {
  HeadCfg cfg;
  double theta;
  float scaling;         // Phi3 su: 1.190238 and per-dimension ext factors
  std::vector<int> past; // tokens already cached per sequence
  std::vector<int> add;  // tokens appended this step per sequence
};

struct RopeProblem {
  int Hq, Hkv, D, tokens;
  int64_t stride;
  std::vector<int> qoIndptr, positions;
  std::vector<float> invFreq;
  float scaling;
  PagedCache cache;
  DevBuf<bf16> qkv;      // [tokens][Hq + 2 Hkv][D] fused rows
  DevBuf<int32_t> dQoIndptr, dPositions;
  DevBuf<float> dInvFreq;
  PagedKV kv() const {
    PagedKV k;
    k.k_pages = cache.k.p;
    k.v_pages = cache.v.p;
    k.kv_indptr = cache.dIndptr.p;
    k.kv_indices = cache.dIndices.p;
    k.kv_last_page_len = cache.dLast.p;
    k.batch = cache.batch;
    k.page_size = cache.pageSize;
    k.num_kv_heads = Hkv;
    k.head_dim = D;
    return k;
  }
};

static RopeProblem makeProblem(const RopeCase& rc, uint64_t seed) {
  RopeProblem p;
  p.Hq = rc.cfg.hq; p.Hkv = rc.cfg.hkv; p.D = rc.cfg.d; p.scaling = rc.scaling;
  std::vector<int> finalLens;
  p.qoIndptr.push_back(0);
  for (size_t b = 0; b < rc.past.size(); ++b) {
    finalLens.push_back(rc.past[b] + rc.add[b]);
    p.qoIndptr.push_back(p.qoIndptr.back() + rc.add[b]);
    for (int i = 0; i < rc.add[b]; ++i) p.positions.push_back(rc.past[b] + i);
  }
  p.tokens = p.qoIndptr.back();
  std::mt19937 rng{static_cast<unsigned>(seed)};
  std::uniform_real_distribution<float> ext(1.f, 3.f);
  for (int i = 0; i < p.D / 2; ++i) {
    float f = float(1.0 / std::pow(rc.theta, 2.0 * i / p.D));
    if (rc.scaling != 1.f) f /= ext(rng);  // su/longrope: inv_freq_i / ext_i
    p.invFreq.push_back(f);
  }
  p.cache = makePagedCache(finalLens, 16, p.Hkv, p.D, seed);
  p.stride = int64_t(p.Hq + 2 * p.Hkv) * p.D;
  p.qkv = DevBuf<bf16>(size_t(p.tokens) * p.stride);
  fillUniform(p.qkv.p, p.qkv.n, seed * 5 + 9, -3.f, 3.f);
  p.dQoIndptr = toDevice(std::vector<int32_t>(p.qoIndptr.begin(), p.qoIndptr.end()));
  p.dPositions = toDevice(std::vector<int32_t>(p.positions.begin(), p.positions.end()));
  p.dInvFreq = toDevice(p.invFreq);
  return p;
}

static void launch(int version, RopeProblem& p) {
  bf16* q = p.qkv.p;
  const bf16* k = p.qkv.p + int64_t(p.Hq) * p.D;
  const bf16* v = p.qkv.p + int64_t(p.Hq + p.Hkv) * p.D;
  if (version == 2) {
    ivl::cuda::ropeAppend(q, p.stride, k, p.stride, v, p.stride, p.tokens, p.Hq, p.dQoIndptr.p,
                          p.dPositions.p, p.dInvFreq.p, p.scaling, p.kv(), 0);
    return;
  }
  ropeAppendV1<<<2048, 256>>>(q, p.stride, k, p.stride, v, p.stride, p.tokens, p.Hq, p.Hkv, p.D,
                              p.cache.batch, p.dQoIndptr.p, p.dPositions.p, p.dInvFreq.p, p.scaling,
                              p.cache.k.p, p.cache.v.p, p.cache.dIndptr.p, p.cache.dIndices.p, 16);
  LAB_CHECK(cudaGetLastError());
}

static bool runCase(int version, const RopeCase& rc, uint64_t seed, std::vector<Tally>& ts,
                    const std::string& cls) {
  RopeProblem p = makeProblem(rc, seed);
  const auto qkv0 = toHostF32(p.qkv.p, p.qkv.n);
  const auto k0 = toHost(reinterpret_cast<const uint16_t*>(p.cache.k.p), p.cache.elems());
  const auto v0 = toHost(reinterpret_cast<const uint16_t*>(p.cache.v.p), p.cache.elems());
  launch(version, p);
  LAB_CHECK(cudaDeviceSynchronize());
  const auto qkv1 = toHostF32(p.qkv.p, p.qkv.n);
  const auto k1 = toHost(reinterpret_cast<const uint16_t*>(p.cache.k.p), p.cache.elems());
  const auto v1 = toHost(reinterpret_cast<const uint16_t*>(p.cache.v.p), p.cache.elems());

  const int D = p.D, half = D / 2;
  ErrStats eq, ek, ev, eOther;
  eq.ulpRule = ek.ulpRule = true;  // one rounding of an fp32 value: within 1 bf16 ulp
  std::vector<char> written(p.cache.elems(), 0);
  for (size_t b = 0; b + 1 < p.qoIndptr.size(); ++b) {
    for (int t = p.qoIndptr[b]; t < p.qoIndptr[b + 1]; ++t) {
      const int pos = p.positions[t];
      std::vector<double> c(half), s(half);
      for (int i = 0; i < half; ++i) {
        const float f = float(pos) * p.invFreq[i];  // the fp32 product, as transformers forms it
        c[i] = std::cos(double(f)) * p.scaling;
        s[i] = std::sin(double(f)) * p.scaling;
      }
      const float* row0 = &qkv0[size_t(t) * p.stride];
      const float* row1 = &qkv1[size_t(t) * p.stride];
      for (int h = 0; h < p.Hq + p.Hkv; ++h) {
        const float* x = row0 + size_t(h) * D;
        for (int i = 0; i < D; ++i) {
          const double ref = i < half ? x[i] * c[i] - x[i + half] * s[i]
                                      : x[i] * c[i - half] + x[i - half] * s[i - half];
          if (h < p.Hq) {
            eq.add(float(ref), row1[size_t(h) * D + i]);
          } else {
            const size_t off = p.cache.offset(int(b), pos, h - p.Hq) + i;
            ek.add(float(ref), ivl::bf16ToF32(k1[off]));
            written[off] = 1;
            const float vin = row0[size_t(p.Hq + p.Hkv + (h - p.Hq)) * D + i];
            ev.add(vin, ivl::bf16ToF32(v1[off]));  // exact copy expected
            if (ivl::f32ToBf16(vin) != v1[off]) ev.bad++;
          }
        }
      }
    }
  }
  // Every slot not appended must be untouched (bit-exact), k and v pages alike.
  for (size_t i = 0; i < written.size(); ++i) {
    if (written[i]) continue;
    eOther.n++;
    if (k0[i] != k1[i] || v0[i] != v1[i]) eOther.bad++;
  }
  std::string lens;
  for (size_t b = 0; b < rc.past.size() && b < 3; ++b) lens += fmt("%s%d+%d", b ? "," : "", rc.past[b], rc.add[b]);
  if (rc.past.size() > 3) lens += ",..";
  const std::string name = fmt("v%d %s %d/%d D%d b%zu [%s]", version, rc.cfg.model, p.Hq, p.Hkv, D,
                               rc.past.size(), lens.c_str());
  bool ok = report("rope", fmt("v%d q rotated ", version) + cls, name + " q", eq, ts);
  ok &= report("rope", fmt("v%d k appended ", version) + cls, name + " k", ek, ts);
  ok &= report("rope", fmt("v%d v appended (bit-exact)", version), name + " v", ev, ts);
  ok &= report("rope", fmt("v%d other slots untouched", version), name + " other", eOther, ts);
  return ok;
}

static int validate(const Options& o) {
  std::vector<Tally> ts;
  struct C { HeadCfg cfg; double theta; float scaling; };
  std::vector<C> cfgs = {{{"1B", 14, 2, 64}, 1e6, 1.f},
                         {{"2B", 16, 8, 128}, 1e6, 1.f},
                         {{"4B", 32, 32, 96}, 1e4, 1.190238f},
                         {{"40B", 56, 8, 128}, 5e6, 1.f}};
  std::vector<int> pastList = {0, 15, 16, 17, 54, 97, 1000, 4096};
  std::vector<int> batches = {1, 12, 17};
  if (o.small) {
    cfgs = {{{"tiny", 4, 2, 64}, 1e6, 1.f}, {{"tiny", 3, 3, 96}, 1e4, 1.190238f}, {{"tiny", 7, 1, 128}, 5e6, 1.f}};
    pastList = {0, 15, 16, 17, 54};
    batches = {1, 3};
  }
  uint64_t seed = 1;
  for (const auto& c : cfgs) {
    const std::string cls = fmt("D%d%s", c.cfg.d, c.scaling != 1.f ? " su" : "");
    for (int batch : batches) {
      RopeCase rc{c.cfg, c.theta, c.scaling, {}, {}};
      for (int b = 0; b < batch; ++b) {
        rc.past.push_back(pastList[(b * 3 + batch) % pastList.size()]);
        // decode-style single tokens, chunks crossing page boundaries, a whole prompt
        const int add = (b % 3 == 0) ? 1 : (b % 3 == 1 ? 1 + (b * 7) % 40 : (o.small ? 20 : 70));
        rc.add.push_back(batch == 1 ? (o.small ? 18 : 70) : add);
      }
      for (int v : {2, 1}) if (v == 2 || !o.small) runCase(v, rc, seed, ts, cls);
      ++seed;
    }
  }
  printf("rope_append: q/k held to <= 1 bf16 ulp (+1e-5) of the fp64 reference per element, rel L2 <= 1e-2\n");
  return printTallies("rope_append", ts);
}

static void bench(const Options& o) {
  const Device dev = deviceInfo();
  Bencher bencher(dev.l2);
  printf("\nrope_append benchmark (median of %d reps, L2 flushed; GB/s = q r+w, k r+w, v r+w)\n", o.reps);
  printf("  %-28s %-4s %10s %8s %6s\n", "shape", "ver", "time(us)", "GB/s", "%peak");
  struct B { const char* name; HeadCfg cfg; int batch, past, add; };
  const B bs[] = {{"40B prefill 1x3328", {"40B", 56, 8, 128}, 1, 0, 3328},
                  {"40B decode 32 tokens", {"40B", 56, 8, 128}, 32, 8191, 1},
                  {"8B prefill 8x512", {"8B", 32, 8, 128}, 8, 0, 512},
                  {"1B prefill 1x3328", {"1B", 14, 2, 64}, 1, 0, 3328}};
  for (const auto& bc : bs) {
    RopeCase rc{bc.cfg, 1e6, 1.f, std::vector<int>(bc.batch, bc.past), std::vector<int>(bc.batch, bc.add)};
    RopeProblem p = makeProblem(rc, 77);
    const double bytes = double(p.tokens) * (p.Hq + 2 * p.Hkv) * p.D * 2 * 2;
    for (int v : {2, 1}) {
      const Timing t = bencher.time([&] { launch(v, p); }, o.reps);
      const double gbps = bytes / (t.medianMs * 1e-3) / 1e9;
      printf("  %-28s v%-3d %10.1f %8.0f %5.1f%%\n", bc.name, v, t.medianMs * 1e3, gbps, 100 * gbps / kPeakGBps);
      jsonLine("{\"kind\":\"bench\",\"kernel\":\"rope_append\",\"version\":\"v%d\",\"shape\":\"%s\","
               "\"tokens\":%d,\"median_us\":%.2f,\"min_us\":%.2f,\"gbps\":%.1f,\"pct_peak\":%.1f}",
               v, bc.name, p.tokens, t.medianMs * 1e3, t.minMs * 1e3, gbps, 100 * gbps / kPeakGBps);
    }
  }
}

int main(int argc, char** argv) {
  const Options o = parseArgs(argc, argv);
  try {
    jsonOpen(o.json);
    const Device dev = deviceInfo();
    printf("rope_append lab on %s%s\n", dev.name.c_str(), o.small ? " [small]" : "");
    int failed = 0;
    if (o.validate) failed = validate(o);
    if (o.bench) bench(o);
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    fprintf(stderr, "rope_append: error: %s\n", e.what());
    return 1;
  }
}
