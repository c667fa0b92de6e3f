// Kernel lab: prefill attention — causal GQA over the paged KV cache (ragged batch) and dense
// non-causal attention over contiguous K/V (the ViT: 13 tiles x 1025 tokens in one launch).
//   build: make -C cuda/dev   run: cuda/dev/build/paged_prefill [validate] [bench] [--small]
// Versions:
//   v1  CUDA cores, fp32: one CTA per (query token, head), all scores in shared memory, exact
//       two-pass softmax. Slow; kept as the GPU oracle for shapes too big for the CPU reference.
//   v2  production (cuda/paged_attention_prefill.cu): flash-style, mma.sync m16n8k16 bf16,
//       4 warps = 64 query rows per CTA, 64-key K/V tiles double-buffered by cp.async; at
//       head_dim 64 production uses v6's tiling (2 m-blocks per warp), promoted after run 2.
//   v3  v2 with 8 warps (128 query rows per CTA: K/V tile reuse x2, fewer CTAs).
//   v4  v2 with 3 K/V stages.
//   v5  2 m-blocks per warp (32 rows), 32-key tiles: each K/V fragment from shared memory
//       feeds 2 MMAs (v2 does 1 ldmatrix.x4 per 2 MMAs: shared-memory bound near half of the
//       mma.sync rate), 4 warps = 128 rows per CTA.
//   v6  2 m-blocks per warp with 64-key tiles (more registers: ~256 wanted).
//   v7  as v5 with 8 warps (256 rows per CTA).
//   v8  32-key tiles, 3 stages, 3 CTAs per SM (registers capped at 170; 70 KB smem).
//   v9  32-key tiles, Q re-read from shared memory per tile, 4 CTAs per SM (<= 128 regs).
//   v10 v2 with Q re-read from shared memory per tile (fewer registers, same occupancy cap).
//   v11 v3 (8 warps) with Q re-read from shared memory.
#include "../paged_attention_prefill.cu"
#include "common.h"

using namespace lab;
using ivl::cuda::PagedKV;
namespace pd = ivl::cuda::prefill_detail;

// ---- v1 ---------------------------------------------------------------------------------------
// grid (tokens of the longest sequence, Hq, sequences); dynamic smem: D + kvLen floats.
template <bool PAGED>
__global__ void __launch_bounds__(128) prefillV1(const pd::PrefillParams p, int D, bool causal) {
  extern __shared__ float sh[];
  float* sq = sh;       // [D]
  float* ss = sh + D;   // [kvEnd]
  const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (p.numQoHeads / p.numKvHeads);
  int qoStart, qoLen, kvLen;
  if (PAGED) {
    qoStart = p.qoIndptr[b];
    qoLen = p.qoIndptr[b + 1] - qoStart;
    kvLen = ivl::cuda::attn::pagedKvLen(p.kvIndptr, p.kvLastPageLen, p.pageSize, b);
  } else {
    qoStart = b * p.seqLen;
    qoLen = kvLen = p.seqLen;
  }
  if (i >= qoLen) return;
  const int kvEnd = causal ? min(kvLen, i + kvLen - qoLen + 1) : kvLen;
  auto kOff = [&](int j) -> int64_t {
    if (PAGED)
      return ((int64_t(p.kvIndices[p.kvIndptr[b] + j / p.pageSize]) * p.pageSize + j % p.pageSize) *
                  p.numKvHeads + hk) * D;
    return int64_t(qoStart + j) * p.kStride + hk * D;
  };
  auto vOff = [&](int j) -> int64_t {
    if (PAGED) return kOff(j);
    return int64_t(qoStart + j) * p.vStride + hk * D;
  };
  for (int d = threadIdx.x; d < D; d += blockDim.x)
    sq[d] = __bfloat162float(p.q[int64_t(qoStart + i) * p.qStride + h * D + d]);
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int j = warp; j < kvEnd; j += 4) {
    const bf16* kj = p.k + kOff(j);
    float dot = 0.f;
    for (int d = lane; d < D; d += 32) dot += sq[d] * __bfloat162float(kj[d]);
    for (int s = 16; s > 0; s >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, s);
    if (lane == 0) ss[j] = dot * p.scaleLog2;
  }
  __syncthreads();
  __shared__ float red[4];
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < kvEnd; j += blockDim.x) mx = fmaxf(mx, ss[j]);
  for (int s = 16; s > 0; s >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, s));
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3]));
  __syncthreads();
  float sum = 0.f;
  for (int j = threadIdx.x; j < kvEnd; j += blockDim.x) {
    ss[j] = exp2f(ss[j] - mx);
    sum += ss[j];
  }
  for (int s = 16; s > 0; s >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, s);
  if (lane == 0) red[warp] = sum;
  __syncthreads();
  sum = red[0] + red[1] + red[2] + red[3];
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < kvEnd; ++j) acc += ss[j] * __bfloat162float(p.v[vOff(j) + d]);
    p.out[(int64_t(qoStart + i) * p.numQoHeads + h) * D + d] = __float2bfloat16_rn(acc / sum);
  }
}

// A prefill problem: paged (ragged batch over a cache) or dense (num_seqs x seq_len).
struct Problem {
  bool paged = true, causal = true;
  int hq = 0, hkv = 0, d = 0;
  // paged
  std::vector<int> qoLens, kvLens;
  int pageSize = 16;
  PagedCache cache;
  DevBuf<int32_t> dQoIndptr;
  std::vector<int> qoIndptr;
  // dense: fused qkv buffer [tokens][hq + 2 hkv][d]
  int numSeqs = 0, seqLen = 0;
  DevBuf<bf16> qkv;
  // both
  int64_t qStride = 0;
  int tokens = 0, maxQo = 0;
  DevBuf<bf16> q, out;  // paged: q [tokens][qStride]
  const bf16* qPtr() const { return paged ? q.p : qkv.p; }
  const bf16* kPtr() const { return qkv.p + int64_t(hq) * d; }
  const bf16* vPtr() const { return qkv.p + int64_t(hq + hkv) * d; }
  double flops() const {  // 4 * D * Hq * visible (query, key) pairs
    double pairs = 0;
    if (paged) {
      for (size_t b = 0; b < qoLens.size(); ++b) {
        const double qo = qoLens[b], kv = kvLens[b];
        pairs += causal ? qo * (kv - qo + 1) + qo * (qo - 1) / 2 : qo * kv;
      }
    } else {
      const double n = seqLen;
      pairs = numSeqs * (causal ? n * (n + 1) / 2 : n * n);
    }
    return 4.0 * d * hq * pairs;
  }
};

static Problem makePaged(const HeadCfg& cfg, const std::vector<int>& qoLens,
                         const std::vector<int>& kvLens, bool causal, uint64_t seed, int pageSize = 16) {
  Problem pr;
  pr.paged = true;
  pr.causal = causal;
  pr.hq = cfg.hq; pr.hkv = cfg.hkv; pr.d = cfg.d;
  pr.qoLens = qoLens; pr.kvLens = kvLens; pr.pageSize = pageSize;
  pr.cache = makePagedCache(kvLens, pageSize, cfg.hkv, cfg.d, seed);
  pr.qoIndptr.push_back(0);
  for (int n : qoLens) pr.qoIndptr.push_back(pr.qoIndptr.back() + n);
  pr.dQoIndptr = toDevice(std::vector<int32_t>(pr.qoIndptr.begin(), pr.qoIndptr.end()));
  pr.tokens = pr.qoIndptr.back();
  pr.maxQo = *std::max_element(qoLens.begin(), qoLens.end());
  pr.qStride = int64_t(cfg.hq + 2 * cfg.hkv) * cfg.d;  // q as a view into a fused qkv row
  pr.q = DevBuf<bf16>(size_t(pr.tokens) * pr.qStride);
  pr.out = DevBuf<bf16>(size_t(pr.tokens) * cfg.hq * cfg.d);
  fillUniform(pr.q.p, pr.q.n, seed * 11 + 3, -2.f, 2.f);
  return pr;
}

// x[r][c] *= f for c < cols of every row r (q's columns of the fused qkv rows).
__global__ void scaleColumns(bf16* x, size_t rows, int64_t stride, int cols, float f) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < rows * cols;
       i += size_t(gridDim.x) * blockDim.x) {
    bf16* e = x + (i / cols) * stride + i % cols;
    *e = __float2bfloat16_rn(__bfloat162float(*e) * f);
  }
}

static Problem makeDense(const HeadCfg& cfg, int numSeqs, int seqLen, bool causal, uint64_t seed) {
  Problem pr;
  pr.paged = false;
  pr.causal = causal;
  pr.hq = cfg.hq; pr.hkv = cfg.hkv; pr.d = cfg.d;
  pr.numSeqs = numSeqs; pr.seqLen = seqLen;
  pr.tokens = numSeqs * seqLen;
  pr.maxQo = seqLen;
  pr.qStride = int64_t(cfg.hq + 2 * cfg.hkv) * cfg.d;
  pr.qkv = DevBuf<bf16>(size_t(pr.tokens) * pr.qStride);
  pr.out = DevBuf<bf16>(size_t(pr.tokens) * cfg.hq * cfg.d);
  // k, v in [-1, 1); q in [-2, 2) (as in the paged cases: a peakier softmax tests more).
  fillUniform(pr.qkv.p, pr.qkv.n, seed * 13 + 1, -1.f, 1.f);
  scaleColumns<<<1024, 256>>>(pr.qkv.p, size_t(pr.tokens), pr.qStride, cfg.hq * cfg.d, 2.f);
  LAB_CHECK(cudaGetLastError());
  return pr;
}

static PagedKV viewOf(const PagedCache& c) {
  PagedKV kv;
  kv.k_pages = c.k.p;
  kv.v_pages = c.v.p;
  kv.kv_indptr = c.dIndptr.p;
  kv.kv_indices = c.dIndices.p;
  kv.kv_last_page_len = c.dLast.p;
  kv.batch = c.batch;
  kv.page_size = c.pageSize;
  kv.num_kv_heads = c.numKvHeads;
  kv.head_dim = c.headDim;
  return kv;
}

static pd::PrefillParams paramsOf(const Problem& pr) {
  bool empty = false;
  pd::PrefillParams p;
  if (pr.paged)
    p = pd::pagedParams(pr.q.p, pr.qStride, pr.out.p, pr.dQoIndptr.p, pr.hq, pr.maxQo,
                        viewOf(pr.cache), 0.f, &empty);
  else
    p = pd::denseParams(pr.qkv.p, pr.qStride, pr.kPtr(), pr.qStride, pr.vPtr(), pr.qStride,
                        pr.out.p, pr.numSeqs, pr.seqLen, pr.hq, pr.hkv, pr.d, 0.f, &empty);
  return p;
}

static void launch(int version, const Problem& pr) {
  const int batch = pr.paged ? int(pr.qoLens.size()) : pr.numSeqs;
  if (version == 2) {  // through the public launchers
    if (pr.paged)
      ivl::cuda::pagedPrefill(pr.q.p, pr.qStride, pr.out.p, pr.dQoIndptr.p, pr.hq, pr.maxQo,
                              viewOf(pr.cache), pr.causal, 0.f, 0);
    else
      ivl::cuda::denseAttention(pr.qkv.p, pr.qStride, pr.kPtr(), pr.qStride, pr.vPtr(), pr.qStride,
                                pr.out.p, pr.numSeqs, pr.seqLen, pr.hq, pr.hkv, pr.d, pr.causal, 0.f, 0);
    return;
  }
  const pd::PrefillParams p = paramsOf(pr);
  if (version == 1) {
    const int maxKv = pr.paged ? *std::max_element(pr.kvLens.begin(), pr.kvLens.end()) : pr.seqLen;
    const size_t smem = (pr.d + maxKv) * sizeof(float);
    if (smem > 200 * 1024) throw std::runtime_error("v1: kv too long for its shared-memory scores");
    auto k = pr.paged ? prefillV1<true> : prefillV1<false>;
    LAB_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    k<<<dim3(pr.maxQo, pr.hq, batch), 128, smem>>>(p, pr.d, pr.causal);
    LAB_CHECK(cudaGetLastError());
    return;
  }
  auto run = [&](auto cfg) {
    using C = decltype(cfg);
    if (pr.paged) pd::dispatchPrefill<true, C, C>(pr.d, pr.causal, p, pr.hq, batch, pr.maxQo, 0);
    else pd::dispatchPrefill<false, C, C>(pr.d, pr.causal, p, pr.hq, batch, pr.maxQo, 0);
  };
  switch (version) {
    case 3: run(pd::TileCfg<8, 1, 64, 2>{}); break;
    case 4: run(pd::TileCfg<4, 1, 64, 3>{}); break;
    case 5: run(pd::TileCfg<4, 2, 32, 2>{}); break;
    case 6: run(pd::TileCfg<4, 2, 64, 2>{}); break;
    case 7: run(pd::TileCfg<8, 2, 32, 2>{}); break;
    case 8: run(pd::TileCfg<4, 1, 32, 3, 3>{}); break;
    case 9: run(pd::TileCfg<4, 1, 32, 2, 4, false>{}); break;
    case 10: run(pd::TileCfg<4, 1, 64, 2, 2, false>{}); break;
    case 11: run(pd::TileCfg<8, 1, 64, 2, 1, false>{}); break;
    default: throw std::runtime_error("no such version");
  }
}

// fp32 CPU reference of the whole problem ([tokens][hq][d]).
static std::vector<float> reference(const Problem& pr) {
  const int D = pr.d, Hq = pr.hq, Hkv = pr.hkv;
  const float scale = 1.f / std::sqrt(float(D));
  std::vector<float> ref(size_t(pr.tokens) * Hq * D);
  if (pr.paged) {
    const auto qh = toHostF32(pr.q.p, pr.q.n);
    const auto kh = toHostF32(pr.cache.k.p, pr.cache.elems());
    const auto vh = toHostF32(pr.cache.v.p, pr.cache.elems());
    for (size_t b = 0; b < pr.qoLens.size(); ++b) {
      const auto K = gatherSeq(pr.cache, kh, int(b)), V = gatherSeq(pr.cache, vh, int(b));
      cpuAttention(&qh[size_t(pr.qoIndptr[b]) * pr.qStride], pr.qStride, K.data(), size_t(Hkv) * D,
                   V.data(), size_t(Hkv) * D, &ref[size_t(pr.qoIndptr[b]) * Hq * D], pr.qoLens[b],
                   pr.kvLens[b], Hq, Hkv, D, pr.causal, scale);
    }
  } else {
    const auto h = toHostF32(pr.qkv.p, pr.qkv.n);
    for (int s = 0; s < pr.numSeqs; ++s) {
      const float* base = &h[size_t(s) * pr.seqLen * pr.qStride];
      cpuAttention(base, pr.qStride, base + size_t(Hq) * D, pr.qStride, base + size_t(Hq + Hkv) * D,
                   pr.qStride, &ref[size_t(s) * pr.seqLen * Hq * D], pr.seqLen, pr.seqLen, Hq, Hkv,
                   D, pr.causal, scale);
    }
  }
  return ref;
}

static bool check(int version, const Problem& pr, const std::vector<float>& ref, const std::string& cls,
                  const std::string& name, std::vector<Tally>& ts) {
  poison(pr.out.p, pr.out.n);
  launch(version, pr);
  LAB_CHECK(cudaDeviceSynchronize());
  const auto got = toHostF32(pr.out.p, pr.out.n);
  ErrStats e;
  for (size_t i = 0; i < ref.size(); ++i) e.add(ref[i], got[i]);
  return report("prefill", fmt("v%d ", version) + cls, name + fmt(" v%d", version), e, ts);
}

static std::string lensStr(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 4; ++i) s += fmt("%s%d", i ? "," : "", v[i]);
  if (v.size() > 4) s += ",..";
  return s;
}

static int validate(const Options& o) {
  std::vector<Tally> ts;
  std::vector<HeadCfg> cfgs = llmConfigs();
  std::vector<int> kvList = {1, 15, 16, 17, 54, 97, 1000, 4097};
  std::vector<int> fullList = {1, 15, 16, 17, 54, 97, 1000};
  std::vector<int> batches = {12, 17};
  std::vector<int> versions = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  if (o.small) {
    versions = {2, 6, 9};  // sanitizer runs: production + the main alternatives
    cfgs = {{"tiny", 4, 2, 64}, {"tiny", 7, 1, 128}, {"tiny", 3, 3, 96}};
    kvList = {1, 15, 16, 17, 54, 130};
    fullList = {1, 17, 70};
    batches = {3};
  }
  uint64_t seed = 1;
  for (const auto& cfg : cfgs) {
    const std::string shape = fmt("paged causal %s %d/%d D%d", cfg.model, cfg.hq, cfg.hkv, cfg.d);
    // batch 1: whole prompt (qo = kv), and one chunk of 97 / 1 queries on a long cache.
    std::vector<std::pair<int, int>> singles;
    for (int kv : fullList) singles.push_back({kv, kv});
    singles.push_back({o.small ? 17 : 97, kvList.back()});
    singles.push_back({1, o.small ? 54 : 1000});
    for (auto [qo, kv] : singles) {
      Problem pr = makePaged(cfg, {qo}, {kv}, true, seed++);
      const auto ref = reference(pr);
      const std::string name = fmt("%s b1 qo%d kv%d", shape.c_str(), qo, kv);
      check(2, pr, ref, shape, name, ts);
      if (kv <= 1000 && qo <= 97) check(1, pr, ref, "(baseline)", name, ts);
    }
    // ragged batches: mixed kv lengths, each sequence's chunk whole or partial.
    for (int batch : batches) {
      std::vector<int> kv(batch), qo(batch);
      for (int i = 0; i < batch; ++i) {
        kv[i] = kvList[(i * 5 + batch) % kvList.size()];
        const bool whole = (i % 2 == 0) && kv[i] <= 1000;
        qo[i] = whole ? kv[i] : std::min(kv[i], 1 + (i * 37 + batch) % 130);
      }
      Problem pr = makePaged(cfg, qo, kv, true, seed++);
      const auto ref = reference(pr);
      const std::string name = fmt("%s b%d kv[%s] qo[%s]", shape.c_str(), batch, lensStr(kv).c_str(),
                                   lensStr(qo).c_str());
      for (int v : versions) check(v, pr, ref, v == 2 ? shape : "variants", name, ts);
    }
  }
  {  // paged non-causal and an odd page size
    const HeadCfg cfg = o.small ? HeadCfg{"tiny", 4, 2, 64} : HeadCfg{"8B", 32, 8, 128};
    Problem pr = makePaged(cfg, {5, 17, 64, 3}, {40, 17, 100, 3}, false, seed++, 7);
    const auto ref = reference(pr);
    check(2, pr, ref, "paged non-causal ps7", "paged non-causal ps7", ts);
  }
  // dense (ViT): fused qkv rows, all tiles one launch.
  struct DenseCase { HeadCfg cfg; int seqs, len; bool causal; const char* cls; };
  std::vector<DenseCase> dense = {
      {{"ViT-6B", 25, 25, 128}, 2, 1025, false, "dense ViT-6B 25x128"},
      {{"ViT-300M", 16, 16, 64}, 3, 1025, false, "dense ViT-300M 16x64"},
      {{"odd", 3, 3, 96}, 5, 17, false, "dense awkward"},
      {{"odd", 2, 2, 128}, 1, 1, false, "dense awkward"},
      {{"odd", 6, 2, 128}, 3, 65, false, "dense awkward"},
      {{"odd", 4, 4, 64}, 2, 100, true, "dense causal"}};
  if (o.small) dense = {{{"odd", 3, 3, 96}, 2, 17, false, "dense awkward"},
                        {{"odd", 2, 2, 128}, 2, 70, false, "dense awkward"},
                        {{"odd", 4, 2, 64}, 2, 33, true, "dense causal"}};
  for (const auto& dc : dense) {
    Problem pr = makeDense(dc.cfg, dc.seqs, dc.len, dc.causal, seed++);
    const auto ref = reference(pr);
    const std::string name = fmt("%s %dx%d H%d/%d D%d", dc.cls, dc.seqs, dc.len, dc.cfg.hq, dc.cfg.hkv, dc.cfg.d);
    for (int v : versions) check(v, pr, ref, v == 2 ? dc.cls : "variants", name, ts);
    if (!o.small && dc.len <= 100) check(1, pr, ref, "(baseline)", name, ts);
  }
  if (!o.small) {
    // Full ViT shapes (13 tiles): production vs the v1 GPU fp32 oracle.
    for (const HeadCfg& cfg : {HeadCfg{"ViT-6B", 25, 25, 128}, HeadCfg{"ViT-300M", 16, 16, 64}}) {
      Problem pr = makeDense(cfg, 13, 1025, false, seed++);
      poison(pr.out.p, pr.out.n);
      launch(1, pr);
      LAB_CHECK(cudaDeviceSynchronize());
      const auto ref = toHostF32(pr.out.p, pr.out.n);
      const std::string cls = fmt("dense %s 13x1025 vs v1 (GPU)", cfg.model);
      check(2, pr, ref, cls, cls, ts);
    }
  }
  return printTallies("prefill", ts);
}

static void bench(const Options& o) {
  const Device dev = deviceInfo();
  Bencher bencher(dev.l2);
  printf("\nprefill benchmark (median of %d reps, L2 flushed; TFLOP/s = 4*D*Hq*visible pairs / time; "
         "roofline %.0f TFLOP/s)\n", o.reps, kPeakTflops);
  printf("  %-34s %-4s %10s %9s %6s\n", "shape", "ver", "time(us)", "TFLOP/s", "%peak");
  struct B { std::string name; std::function<Problem()> make; std::vector<int> versions; };
  const auto cfg = [](const char* m) {
    for (const auto& c : llmConfigs()) if (std::string(c.model) == m) return c;
    throw std::runtime_error("no config");
  };
  std::vector<B> bs = {
      {"ViT-6B dense 13x1025 25x128", [] { return makeDense({"ViT-6B", 25, 25, 128}, 13, 1025, false, 1); }, {2, 3, 6, 10}},
      {"ViT-300M dense 13x1025 16x64", [] { return makeDense({"ViT-300M", 16, 16, 64}, 13, 1025, false, 2); }, {2, 3, 6, 1}},
      {"40B causal 1x3328 56/8", [&] { return makePaged(cfg("40B"), {3328}, {3328}, true, 3); }, {2, 3}},
      {"40B chunk qo512 kv8192 56/8", [&] { return makePaged(cfg("40B"), {512}, {8192}, true, 4); }, {2, 3}},
      {"76B causal 1x3328 64/8", [&] { return makePaged(cfg("76B"), {3328}, {3328}, true, 5); }, {2, 3}},
      {"8B causal 1x4096 32/8", [&] { return makePaged(cfg("8B"), {4096}, {4096}, true, 6); }, {2, 3}},
      {"8B causal 8x512 32/8", [&] { return makePaged(cfg("8B"), std::vector<int>(8, 512), std::vector<int>(8, 512), true, 7); }, {2, 3, 9}},
      {"4B causal 1x2048 32/32 D96", [&] { return makePaged(cfg("4B"), {2048}, {2048}, true, 8); }, {2, 3}},
      {"1B causal 1x3328 14/2 D64", [&] { return makePaged(cfg("1B"), {3328}, {3328}, true, 9); }, {2, 6}},
  };
  for (auto& bc : bs) {
    Problem pr = bc.make();
    const double flops = pr.flops();
    for (int v : bc.versions) {
      const Timing t = bencher.time([&] { launch(v, pr); }, v == 1 ? 20 : o.reps);
      const double tf = flops / (t.medianMs * 1e-3) / 1e12;
      printf("  %-34s v%-3d %10.1f %9.1f %5.1f%%\n", bc.name.c_str(), v, t.medianMs * 1e3, tf,
             100 * tf / kPeakTflops);
      jsonLine("{\"kind\":\"bench\",\"kernel\":\"prefill\",\"version\":\"v%d\",\"shape\":\"%s\",\"hq\":%d,"
               "\"hkv\":%d,\"d\":%d,\"tokens\":%d,\"flops\":%.4e,\"median_us\":%.2f,\"min_us\":%.2f,"
               "\"tflops\":%.1f,\"pct_peak\":%.1f}",
               v, bc.name.c_str(), pr.hq, pr.hkv, pr.d, pr.tokens, flops, t.medianMs * 1e3,
               t.minMs * 1e3, tf, 100 * tf / kPeakTflops);
    }
  }
}

int main(int argc, char** argv) {
  const Options o = parseArgs(argc, argv);
  try {
    jsonOpen(o.json);
    const Device dev = deviceInfo();
    printf("paged_prefill lab on %s (%d SMs)%s\n", dev.name.c_str(), dev.sms, o.small ? " [small]" : "");
    int failed = 0;
    if (o.validate) failed = validate(o);
    if (o.bench) bench(o);
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    fprintf(stderr, "paged_prefill: error: %s\n", e.what());
    return 1;
  }
}
