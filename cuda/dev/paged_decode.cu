// Kernel lab: paged decode attention (one query token per sequence, GQA, split-K).
//   build: make -C cuda/dev   run: cuda/dev/build/paged_decode [validate] [bench] [--small]
// Versions:
//   v1  CUDA cores, one CTA (4 warps) per (sequence, q head), warps stride over keys, one key
//       per warp step (dot by shuffle reduction); no split, no GQA reuse (K/V read G times).
//       Kept as the baseline: latency-bound on the per-key reduction.
//   v2  production (cuda/paged_attention_decode.cu): CTA per (sequence, kv head, split), the
//       query group as MMA rows, cp.async K/V tiles STAGES deep, merge kernel. Variants:
//       v2s2 / v2s4 = 2 / 4 stages (production: 3), v2-nosplit = one split, v2-half /
//       v2-double = half / twice the planner's splits, v2-pdl = merge kernel launched with
//       programmatic dependent launch (griddepcontrol.wait) to hide its launch latency (run 3:
//       12.3 vs 14.4 us at 40B batch 1, 2k keys; candidate for the default), v2-fused = no
//       merge kernel: the last split CTA of each (sequence, kv head) merges
//       (DecodePlan::fused_merge, INTERNVL_CUDA_ATTN_FUSED_MERGE=1; measured 2026-11-29, not
//       adopted: 15.5 vs 13.7 us at 40B batch 1, 2k keys; docs/ENGINE.md).
#include "../paged_attention_decode.cu"
#include "common.h"

#include <type_traits>

using namespace lab;
using ivl::cuda::DecodePlan;
using ivl::cuda::PagedKV;

// ---- v1 ------------------------------------------------------------------------------------
template <int D>
__global__ void __launch_bounds__(128) decodeV1(const bf16* q, int64_t qStride, bf16* out, int Hq,
                                                int Hkv, const bf16* kPages, const bf16* vPages,
                                                const int* indptr, const int* indices,
                                                const int* last, int pageSize, float scaleLog2) {
  constexpr int PER = D / 32;  // dims per lane, lane-strided (d = i*32 + lane: coalesced)
  __shared__ float sM[4], sL[4], sAcc[4][D];
  const int h = blockIdx.x, b = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int hk = h / (Hq / Hkv);
  const int kvLen = ivl::cuda::attn::pagedKvLen(indptr, last, pageSize, b);
  float qv[PER], acc[PER];
  for (int i = 0; i < PER; ++i) {
    qv[i] = __bfloat162float(q[b * qStride + h * D + i * 32 + lane]);
    acc[i] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int j = warp; j < kvLen; j += 4) {
    const int64_t off =
        ((int64_t(indices[indptr[b] + j / pageSize]) * pageSize + j % pageSize) * Hkv + hk) * D;
    float dot = 0.f;
    for (int i = 0; i < PER; ++i) dot += qv[i] * __bfloat162float(kPages[off + i * 32 + lane]);
    for (int sh = 16; sh > 0; sh >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, sh);
    const float s = dot * scaleLog2;
    const float mNew = fmaxf(m, s);
    const float alpha = exp2f(m - mNew), p = exp2f(s - mNew);
    l = l * alpha + p;
    for (int i = 0; i < PER; ++i)
      acc[i] = acc[i] * alpha + p * __bfloat162float(vPages[off + i * 32 + lane]);
    m = mNew;
  }
  if (lane == 0) { sM[warp] = m; sL[warp] = l; }
  for (int i = 0; i < PER; ++i) sAcc[warp][i * 32 + lane] = acc[i];
  __syncthreads();
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float mx = fmaxf(fmaxf(sM[0], sM[1]), fmaxf(sM[2], sM[3]));
    if (mx == -INFINITY) mx = 0.f;
    float num = 0.f, den = 0.f;
    for (int w = 0; w < 4; ++w) {
      const float f = exp2f(sM[w] - mx);
      num += f * sAcc[w][d];
      den += f * sL[w];
    }
    out[(int64_t(b) * Hq + h) * D + d] = __float2bfloat16_rn(den > 0.f ? num / den : 0.f);
  }
}

static void launchV1(const bf16* q, int64_t qStride, bf16* out, int Hq, const PagedCache& c) {
  const float scaleLog2 = 1.4426950408889634f / std::sqrt(float(c.headDim));
  const dim3 grid(Hq, c.batch);
#define V1(DIM)                                                                                 \
  decodeV1<DIM><<<grid, 128>>>(q, qStride, out, Hq, c.numKvHeads, c.k.p, c.v.p, c.dIndptr.p,     \
                               c.dIndices.p, c.dLast.p, c.pageSize, scaleLog2)
  switch (c.headDim) {
    case 64: V1(64); break;
    case 96: V1(96); break;
    default: V1(128); break;
  }
#undef V1
  LAB_CHECK(cudaGetLastError());
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

// v2 through the production parameters, any pipeline depth.
static void launchV2(int stages, const bf16* q, int64_t qStride, bf16* out, int Hq,
                     const PagedCache& c, const DecodePlan& plan, void* ws, size_t wsBytes) {
  using namespace ivl::cuda::decode_detail;
  bool empty = false;
  const PagedKV kv = viewOf(c);
  const DecodeParams p = decodeParams(q, qStride, out, Hq, kv, plan, ws, wsBytes, 0.f, &empty);
  if (empty) return;
  switch (stages) {
    case 2: dispatchDecode<2>(c.headDim, p, c.batch, 0, false); break;
    case 4: dispatchDecode<4>(c.headDim, p, c.batch, 0, false); break;
    case -3: dispatchDecode<3>(c.headDim, p, c.batch, 0, mergeWithPdl()); break;  // v2-pdl
    default: ivl::cuda::pagedDecode(q, qStride, out, Hq, kv, plan, ws, wsBytes, 0.f, 0); break;
  }
}

// ---- validate -----------------------------------------------------------------------------------
struct Case {
  HeadCfg cfg;
  std::vector<int> kvLens;
  int pageSize = 16;
};

static bool runCase(const Case& cs, const Device& dev, uint64_t seed, std::vector<Tally>& ts,
                    bool withV1) {
  const int Hq = cs.cfg.hq, Hkv = cs.cfg.hkv, D = cs.cfg.d, batch = int(cs.kvLens.size());
  PagedCache c = makePagedCache(cs.kvLens, cs.pageSize, Hkv, D, seed);
  const int64_t qStride = int64_t(Hq) * D + 8;  // a padded view, as into a fused qkv buffer
  DevBuf<bf16> q(size_t(batch) * qStride), out(size_t(batch) * Hq * D);
  fillUniform(q.p, q.n, seed * 7 + 5, -2.f, 2.f);

  // fp32 reference from the same bf16 inputs, reading the same pages.
  const auto qh = toHostF32(q.p, q.n), kh = toHostF32(c.k.p, c.elems()), vh = toHostF32(c.v.p, c.elems());
  std::vector<float> ref(size_t(batch) * Hq * D);
  const float scale = 1.f / std::sqrt(float(D));
  for (int b = 0; b < batch; ++b) {
    const auto K = gatherSeq(c, kh, b), V = gatherSeq(c, vh, b);
    cpuAttention(&qh[b * qStride], qStride, K.data(), size_t(Hkv) * D, V.data(), size_t(Hkv) * D,
                 &ref[size_t(b) * Hq * D], 1, c.kvLens[b], Hq, Hkv, D, true, scale);
  }
  const int maxKv = *std::max_element(cs.kvLens.begin(), cs.kvLens.end());
  std::string shape = fmt("%s %d/%d D%d", cs.cfg.model, Hq, Hkv, D);
  std::string lens;
  for (size_t i = 0; i < cs.kvLens.size() && i < 4; ++i) lens += fmt("%s%d", i ? "," : "", cs.kvLens[i]);
  if (cs.kvLens.size() > 4) lens += ",..";
  const std::string name = fmt("%s b%d kv[%s] ps%d", shape.c_str(), batch, lens.c_str(), cs.pageSize);

  auto check = [&](const std::string& cls, const std::string& variant) {
    LAB_CHECK(cudaDeviceSynchronize());
    const auto got = toHostF32(out.p, out.n);
    ErrStats e;
    for (size_t i = 0; i < ref.size(); ++i) e.add(ref[i], got[i]);
    return report("decode", cls, name + " " + variant, e, ts);
  };
  bool ok = true;
  // v2: the automatic plan, a forced odd split count, and an understated max_kv_len (the last
  // split must run on to the real length).
  struct PlanCase { const char* what; int maxLen; int force; };
  const PlanCase plans[] = {{"auto", maxKv, 0}, {"splits=3", maxKv, 3}, {"max/4", std::max(1, maxKv / 4), 0}};
  for (const auto& pc : plans) {
    if (pc.force == 3 && maxKv < 3 * 64) continue;
    const DecodePlan plan = ivl::cuda::planPagedDecode(batch, Hq, Hkv, D, pc.maxLen, dev.sms, pc.force, 0);
    DevBuf<unsigned char> ws(plan.workspace_bytes);
    poison(out.p, out.n);
    launchV2(3, q.p, qStride, out.p, Hq, c, plan, ws.p, ws.n);
    ok &= check(fmt("v2 %s", shape.c_str()) + (cs.pageSize != 16 ? " odd page" : ""),
                fmt("v2 %s splits=%d", pc.what, plan.num_splits));
  }
  {
    const DecodePlan plan = ivl::cuda::planPagedDecode(batch, Hq, Hkv, D, maxKv, dev.sms, 0, 0);
    DevBuf<unsigned char> ws(plan.workspace_bytes);
    poison(out.p, out.n);
    launchV2(-3, q.p, qStride, out.p, Hq, c, plan, ws.p, ws.n);
    ok &= check("v2-pdl", fmt("v2-pdl splits=%d", plan.num_splits));
  }
  {
    // v2-fused: the last split CTA merges (DecodePlan::fused_merge), twice on one zeroed
    // workspace: the second call needs the counters the first re-armed.
    const DecodePlan plan = ivl::cuda::planPagedDecode(batch, Hq, Hkv, D, maxKv, dev.sms, maxKv >= 3 * 64 ? 3 : 0, 1);
    DevBuf<unsigned char> ws(plan.workspace_bytes);
    if (ws.n) LAB_CHECK(cudaMemset(ws.p, 0, ws.n));
    for (int rep = 0; rep < 2; ++rep) {
      poison(out.p, out.n);
      launchV2(3, q.p, qStride, out.p, Hq, c, plan, ws.p, ws.n);
      ok &= check("v2-fused", fmt("v2-fused splits=%d call %d", plan.num_splits, rep + 1));
    }
  }
  if (withV1) {
    poison(out.p, out.n);
    launchV1(q.p, qStride, out.p, Hq, c);
    ok &= check("v1 (baseline)", "v1");
  }
  return ok;
}

static int validate(const Options& o, const Device& dev) {
  std::vector<Tally> ts;
  std::vector<HeadCfg> cfgs = llmConfigs();
  std::vector<int> kvList = {1, 15, 16, 17, 54, 97, 1000, 4097};
  std::vector<int> batches = {1, 12, 17};
  if (o.small) {
    cfgs = {{"tiny", 4, 2, 64}, {"tiny", 7, 1, 128}, {"tiny", 3, 3, 96}};
    kvList = {1, 15, 16, 17, 54, 200};
    batches = {1, 3};
  }
  uint64_t seed = 1;
  for (const auto& cfg : cfgs) {
    for (int batch : batches) {
      if (batch == 1) {
        for (int kv : kvList) runCase({cfg, {kv}}, dev, seed++, ts, kv <= 1000);
      } else {
        std::vector<int> lens(batch);
        for (int i = 0; i < batch; ++i) lens[i] = kvList[(i * 5 + batch) % kvList.size()];
        runCase({cfg, lens}, dev, seed++, ts, true);
      }
    }
  }
  // Page sizes other than 16 (odd and larger), mixed lengths around their boundaries.
  const HeadCfg odd = o.small ? HeadCfg{"tiny", 4, 2, 64} : HeadCfg{"40B", 56, 8, 128};
  runCase({odd, {1, 6, 7, 8, 54, 97}, 7}, dev, seed++, ts, false);
  runCase({odd, {1, 31, 32, 33, o.small ? 100 : 1000}, 32}, dev, seed++, ts, false);
  return printTallies("decode", ts);
}

// ---- benchmark -----------------------------------------------------------------------------------
static void bench(const Options& o, const Device& dev) {
  Bencher bencher(dev.l2);
  printf("\ndecode benchmark (median of %d reps, L2 flushed; GB/s = (K/V read + q + out) / time; "
         "roofline %.0f GB/s)\n", o.reps, kPeakGBps);
  printf("  %-5s %-9s %5s %6s %-11s %6s %9s %8s %6s\n", "model", "heads", "batch", "kv", "version",
         "splits", "time(us)", "GB/s", "%peak");
  struct M { HeadCfg cfg; std::vector<int> batches; bool variants; };
  const HeadCfg* c40 = nullptr;
  for (const auto& c : llmConfigs()) if (std::string(c.model) == "40B") c40 = &c;
  std::vector<M> ms;
  ms.push_back({*c40, {1, 8, 32}, true});
  for (const auto& c : llmConfigs()) {
    const std::string n = c.model;
    if (n == "8B") ms.push_back({c, {1, 8, 32}, false});
    if (n == "1B" || n == "4B" || n == "76B") ms.push_back({c, {8}, false});
  }
  uint64_t seed = 1000;
  for (const auto& m : ms) {
    for (int kv : {2048, 8192, 32768}) {
      for (int batch : m.batches) {
        const int Hq = m.cfg.hq, Hkv = m.cfg.hkv, D = m.cfg.d;
        PagedCache c = makePagedCache(std::vector<int>(batch, kv), 16, Hkv, D, seed++, 0);
        const int64_t qStride = int64_t(Hq) * D;
        DevBuf<bf16> q(size_t(batch) * qStride), out(size_t(batch) * Hq * D);
        fillUniform(q.p, q.n, seed, -2.f, 2.f);
        const double bytes = double(batch) * kv * Hkv * D * 2 * 2 + double(batch) * Hq * D * 2 * 2;
        auto row = [&](const char* ver, int splits, const Timing& t) {
          const double gbps = bytes / (t.medianMs * 1e-3) / 1e9;
          printf("  %-5s %2d/%-2d D%-3d %5d %6d %-11s %6d %9.1f %8.0f %5.1f%%\n", m.cfg.model, Hq, Hkv, D,
                 batch, kv, ver, splits, t.medianMs * 1e3, gbps, 100 * gbps / kPeakGBps);
          jsonLine("{\"kind\":\"bench\",\"kernel\":\"decode\",\"version\":\"%s\",\"model\":\"%s\",\"hq\":%d,"
                   "\"hkv\":%d,\"d\":%d,\"batch\":%d,\"kv_len\":%d,\"splits\":%d,\"median_us\":%.2f,"
                   "\"min_us\":%.2f,\"bytes\":%.0f,\"gbps\":%.1f,\"pct_peak\":%.1f}",
                   ver, m.cfg.model, Hq, Hkv, D, batch, kv, splits, t.medianMs * 1e3, t.minMs * 1e3,
                   bytes, gbps, 100 * gbps / kPeakGBps);
        };
        const DecodePlan plan = ivl::cuda::planPagedDecode(batch, Hq, Hkv, D, kv, dev.sms, 0, 0);
        DevBuf<unsigned char> ws(plan.workspace_bytes);
        row("v2", plan.num_splits,
            bencher.time([&] { launchV2(3, q.p, qStride, out.p, Hq, c, plan, ws.p, ws.n); }, o.reps));
        if (m.variants) {
          row("v2s2", plan.num_splits,
              bencher.time([&] { launchV2(2, q.p, qStride, out.p, Hq, c, plan, ws.p, ws.n); }, o.reps));
          row("v2s4", plan.num_splits,
              bencher.time([&] { launchV2(4, q.p, qStride, out.p, Hq, c, plan, ws.p, ws.n); }, o.reps));
          if (plan.num_splits > 1) {
            row("v2-pdl", plan.num_splits,
                bencher.time([&] { launchV2(-3, q.p, qStride, out.p, Hq, c, plan, ws.p, ws.n); }, o.reps));
            const DecodePlan fp = ivl::cuda::planPagedDecode(batch, Hq, Hkv, D, kv, dev.sms, 0, 1);
            DevBuf<unsigned char> fws(fp.workspace_bytes);
            LAB_CHECK(cudaMemset(fws.p, 0, fws.n));
            row("v2-fused", fp.num_splits,
                bencher.time([&] { launchV2(3, q.p, qStride, out.p, Hq, c, fp, fws.p, fws.n); }, o.reps));
          }
          for (int f : {plan.num_splits / 2, plan.num_splits * 2}) {  // is the planner's choice right?
            if (f < 2 || batch > 8) continue;
            const DecodePlan fp = ivl::cuda::planPagedDecode(batch, Hq, Hkv, D, kv, dev.sms, f, 0);
            DevBuf<unsigned char> fws(fp.workspace_bytes);
            row(f < plan.num_splits ? "v2-half" : "v2-double", fp.num_splits,
                bencher.time([&] { launchV2(3, q.p, qStride, out.p, Hq, c, fp, fws.p, fws.n); }, o.reps));
          }
          if (plan.num_splits > 1) {
            const DecodePlan one = ivl::cuda::planPagedDecode(batch, Hq, Hkv, D, kv, dev.sms, 1, 0);
            row("v2-nosplit", 1,
                bencher.time([&] { launchV2(3, q.p, qStride, out.p, Hq, c, one, nullptr, 0); }, o.reps));
          }
          if (batch * kv <= 8 * 8192)
            row("v1", 1, bencher.time([&] { launchV1(q.p, qStride, out.p, Hq, c); }, o.reps));
        }
      }
    }
  }
}

int main(int argc, char** argv) {
  const Options o = parseArgs(argc, argv);
  try {
    jsonOpen(o.json);
    const Device dev = deviceInfo();
    printf("paged_decode lab on %s (%d SMs, L2 %zu MB)%s\n", dev.name.c_str(), dev.sms, dev.l2 >> 20,
           o.small ? " [small]" : "");
    int failed = 0;
    if (o.validate) failed = validate(o, dev);
    if (o.bench) bench(o, dev);
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    fprintf(stderr, "paged_decode: error: %s\n", e.what());
    return 1;
  }
}
