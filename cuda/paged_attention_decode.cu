// Decode attention over the paged KV cache: one query token per sequence, GQA-aware, split-K
// over long contexts with a merge kernel. Contract and layouts: paged_attention.h.
// Lab: cuda/dev/paged_decode.cu (v2 there; v1 is the one-warp-per-head CUDA-core baseline).
//
// Decode is bandwidth-bound: every K/V byte of the batch is read once per step. A CTA owns
// (sequence, kv head, split): it streams 64-key K/V tiles through shared memory (cp.async,
// STAGES deep, 16-byte loads) and runs the whole query group against each tile on the tensor
// cores: the group's G <= 16 heads are the rows of an m16n8k16 MMA (rows >= G are zero), so a
// K/V tile is loaded once for all G heads. Each of the 4 warps takes 16 keys of the tile and
// keeps its own online-softmax state; the warps merge through shared memory at the end. With
// several splits each CTA writes a normalized partial (o, lse) in fp32 and decodeMergeKernel
// combines them: out = sum_s 2^(lse_s - M) o_s / sum_s 2^(lse_s - M) (or, with
// DecodePlan::fused_merge, the last split CTA of each (sequence, kv head) does). Both kernels
// can be launched with programmatic dependent launch on Hopper (decodeWithPdl; lab v2-pdl);
// the split kernel then loads its first K/V tiles (all but the step's new key) before its wait.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "attention_mma.h"
#include "check.h"
#include "env_switch.h"
#include "kernel_trace.h"
#include "paged_attention.h"
#include "pdl.h"
#include "rope_rotate.h"

namespace ivl::cuda {
namespace decode_detail {

using attn::bf16;

constexpr int kWarps = 4;
constexpr int kTileKeys = 16 * kWarps;  // 64 keys per K/V tile, 16 per warp
constexpr int kMinChunk = 128;          // fewest keys per split (bounds the merge traffic)
constexpr int kStages = 3;              // production pipeline depth (lab measures 2/3/4)

struct DecodeParams {
  const bf16* q;
  int64_t qStride;
  bf16* out;              // [batch, numQoHeads, D]
  const bf16* kPages;
  const bf16* vPages;
  const int32_t* kvIndptr;
  const int32_t* kvIndices;
  const int32_t* kvLastPageLen;
  int pageSize;
  int numQoHeads;
  int numKvHeads;
  int numSplits;
  int chunkLen;
  float scaleLog2;
  float* partO;           // [batch, numQoHeads, numSplits, D]   (numSplits > 1)
  float* partLse;         // [batch, numQoHeads, numSplits]      log2 domain
  int* mergeCounters;     // [batch, numKvHeads] arrival counters, zero between calls: the last
                          // split CTA merges (DecodePlan::fused_merge); null: the merge kernel
  bool earlyKv;           // load the first K/V tiles before the PDL wait (all keys but the last)
  // Rope in the kernel (DecodeRope; qkv null: q is roped already and the new key is cached):
  const bf16* qkv;        // [batch, (numQoHeads + 2 numKvHeads) D] raw q | k | v rows
  const void* ropeCos;    // [batch, D/2], BF16 (ropeBf16Tables) or F32
  const void* ropeSin;
  bool ropeBf16Tables;
};

// Fused merge: the arrival counters sit in a fixed head of the workspace (so any call's layout
// finds them where the previous call re-armed them), then the partials.
constexpr int kMaxMergeCounters = 16384;
constexpr int kMaxFusedSplits = 256;  // the merging CTA's weights fit its shared memory
constexpr size_t kMergeCounterBytes = kMaxMergeCounters * sizeof(int);

// out[bh, d] of a split call: the active splits' partials combined,
// sum_s 2^(lse_s - M) o_s / sum_s 2^(lse_s - M), with eight splits' loads in flight at a time
// (one by one, the merge's latency grew with the split count).
template <int HEAD_DIM>
__device__ __forceinline__ float mergeSplits(const DecodeParams& p, int64_t bh, int d, int nActive) {
  const float* lse = p.partLse + bh * p.numSplits;
  const float* po = p.partO + bh * p.numSplits * HEAD_DIM + d;
  float mMax = -INFINITY;
  for (int s0 = 0; s0 < nActive; s0 += 8) {
    float t[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) t[j] = s0 + j < nActive ? lse[s0 + j] : -INFINITY;
#pragma unroll
    for (int j = 0; j < 8; ++j) mMax = fmaxf(mMax, t[j]);
  }
  const float mUse = mMax == -INFINITY ? 0.f : mMax;
  float num = 0.f, den = 0.f;
  for (int s0 = 0; s0 < nActive; s0 += 8) {
    float l[8], o[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const bool in = s0 + j < nActive;
      l[j] = in ? lse[s0 + j] : -INFINITY;
      o[j] = in ? po[int64_t(s0 + j) * HEAD_DIM] : 0.f;
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float f = attn::fastExp2(l[j] - mUse);  // 0 for a padded slot
      num += f * o[j];
      den += f;
    }
  }
  return den > 0.f ? num / den : 0.f;
}

// The fused merge's combine, by one CTA for a whole query group (rows bh0 .. bh0+group-1).
// One CTA has few threads for group * D outputs, so each thread keeps several float4 outputs
// and every split's loads for them in flight at once, with the weights
// 2^(lse_s - M) / sum_s' 2^(lse_s' - M) worked out once per row (sW: group * nActive floats).
// The partials were written by other CTAs of this grid: L2 loads (__ldcg), never L1.
template <int HEAD_DIM>
__device__ __forceinline__ void mergeGroupInCta(const DecodeParams& p, int64_t bh0, int group, int nActive,
                                                float* sW) {
  constexpr int NT = kWarps * 32;
  constexpr int V4 = HEAD_DIM / 4;
  constexpr int ITEMS = (16 * V4 + NT - 1) / NT;  // float4 outputs per thread at group 16
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  __syncthreads();  // sW aliases shared memory the split's own epilogue just read
  for (int i = tid; i < group * nActive; i += NT) {
    const int r = i / nActive, s = i % nActive;
    sW[i] = __ldcg(p.partLse + (bh0 + r) * p.numSplits + s);
  }
  __syncthreads();
  for (int r = warp; r < group; r += kWarps) {
    float* w = sW + r * nActive;
    float mMax = -INFINITY;
    for (int s = lane; s < nActive; s += 32) mMax = fmaxf(mMax, w[s]);
    mMax = attn::warpMax(mMax);
    const float mUse = mMax == -INFINITY ? 0.f : mMax;
    float den = 0.f;
    for (int s = lane; s < nActive; s += 32) den += attn::fastExp2(w[s] - mUse);
    den = attn::warpSum(den);
    const float inv = den > 0.f ? 1.f / den : 0.f;
    __syncwarp();
    for (int s = lane; s < nActive; s += 32) w[s] = attn::fastExp2(w[s] - mUse) * inv;
  }
  __syncthreads();
  float4 acc[ITEMS];
  const float4* src[ITEMS];
  const float* wRow[ITEMS];
#pragma unroll
  for (int k = 0; k < ITEMS; ++k) {
    acc[k] = make_float4(0.f, 0.f, 0.f, 0.f);
    const int idx = min(tid + k * NT, group * V4 - 1), r = idx / V4, c = idx % V4;
    src[k] = reinterpret_cast<const float4*>(p.partO + (bh0 + r) * p.numSplits * HEAD_DIM) + c;
    wRow[k] = sW + r * nActive;
  }
#pragma unroll 2
  for (int s = 0; s < nActive; ++s) {
#pragma unroll
    for (int k = 0; k < ITEMS; ++k) {
      if (tid + k * NT >= group * V4) continue;
      const float w = wRow[k][s];
      const float4 v = __ldcg(src[k] + s * V4);
      acc[k].x = fmaf(w, v.x, acc[k].x);
      acc[k].y = fmaf(w, v.y, acc[k].y);
      acc[k].z = fmaf(w, v.z, acc[k].z);
      acc[k].w = fmaf(w, v.w, acc[k].w);
    }
  }
#pragma unroll
  for (int k = 0; k < ITEMS; ++k) {
    const int idx = tid + k * NT;
    if (idx >= group * V4) continue;
    const int r = idx / V4, c = idx % V4;
    const uint2 packed = make_uint2(attn::packBf16x2(acc[k].x, acc[k].y), attn::packBf16x2(acc[k].z, acc[k].w));
    *reinterpret_cast<uint2*>(p.out + (bh0 + r) * HEAD_DIM + c * 4) = packed;
  }
}

template <int HEAD_DIM, int STAGES>
constexpr size_t decodeSmemBytes() {
  constexpr int LDS = attn::TileStride<HEAD_DIM>::value;
  constexpr size_t tiles = size_t(16 + 2 * STAGES * kTileKeys) * LDS * sizeof(bf16);
  constexpr size_t merge = size_t(kWarps * 16 * (HEAD_DIM + 4) + 2 * kWarps * 16) * sizeof(float);
  return tiles > merge ? tiles : merge;
}

// Split s of sequence b covers keys [s*chunk, (s+1)*chunk), the last split up to kv_len;
// split 0 always runs so that an empty sequence still gets an (all-zero) output.
__device__ __forceinline__ int activeSplits(int kvLen, int chunk, int numSplits) {
  return max(1, min(numSplits, (kvLen + chunk - 1) / chunk));
}

// HEAD_DIM: 64, 96 or 128. STAGES: K/V tiles in flight (>= 2). FUSED_MERGE: with several
// splits, the last CTA of each (sequence, kv head) merges (p.mergeCounters).
template <int HEAD_DIM, int STAGES, bool FUSED_MERGE = false>
__global__ void __launch_bounds__(kWarps * 32)
decodeKernel(const DecodeParams p) {
  IVL_TRACE_SCOPE;
  constexpr int D = HEAD_DIM;
  constexpr int BN = kTileKeys;
  constexpr int LDS = attn::TileStride<D>::value;
  constexpr int CHUNKS = D / 8;
  constexpr int NT = kWarps * 32;
  constexpr int OLD = D + 4;  // fp32 row stride of the merge buffer (breaks bank alignment)
  static_assert(D % 32 == 0 && STAGES >= 2, "bad configuration");
  static_assert(decodeSmemBytes<D, STAGES>() >= size_t(16) * kMaxFusedSplits * sizeof(float),
                "the fused merge's weights must fit");

  extern __shared__ __align__(16) unsigned char smemRaw[];
  bf16* sQ = reinterpret_cast<bf16*>(smemRaw);  // [16][LDS]
  bf16* sK = sQ + 16 * LDS;                     // [STAGES][BN][LDS]
  bf16* sV = sK + STAGES * BN * LDS;            // [STAGES][BN][LDS]

  // Launched with PDL (decodeWithPdl): the next kernel (the merge, or the o projection's GEMV,
  // which streams its weights before its own wait) may be scheduled now.
  pdlLaunchDependents();
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, tq = lane & 3;
  const int split = blockIdx.x, hkv = blockIdx.y, b = blockIdx.z;
  const int group = p.numQoHeads / p.numKvHeads;
  // Before the wait (earlyKv): the page tables and the K/V rows of every key but the sequence's
  // last are final before the step's first kernel (the caller's contract, pagedDecode); only q
  // and the last key come from this step (rope_append before, or this kernel: DecodeRope). So
  // the first tiles stream in while the kernel before finishes, and only q and one row wait.
  if (!p.earlyKv) {
    pdlWait();
    IVL_TRACE_GO;
  }
  const int kvLen = attn::pagedKvLen(p.kvIndptr, p.kvLastPageLen, p.pageSize, b);
  const int nActive = activeSplits(kvLen, p.chunkLen, p.numSplits);
  if (split >= nActive) return;
  const int kvStart = split * p.chunkLen;
  const int kvEnd = split == nActive - 1 ? kvLen : min(kvLen, kvStart + p.chunkLen);
  const int numTiles = max(0, (kvEnd - kvStart + BN - 1) / BN);
  const int pageBegin = p.kvIndptr[b];
  const int64_t rowStride = int64_t(p.numKvHeads) * D;
  const int lastKey = kvLen - 1;

  auto loadKV = [&](int tile, int stage) {
    bf16* dK = sK + stage * BN * LDS;
    bf16* dV = sV + stage * BN * LDS;
    for (int c = tid; c < BN * CHUNKS; c += NT) {
      const int r = c / CHUNKS, ch = c % CHUNKS;
      const int j = kvStart + tile * BN + r;
      const bool valid = j < kvEnd;
      const int jj = valid ? j : kvStart;
      const int64_t page = p.kvIndices[pageBegin + jj / p.pageSize];
      const int64_t off = (page * p.pageSize + jj % p.pageSize) * rowStride + hkv * D + ch * 8;
      attn::cpAsync16(dK + r * LDS + ch * 8, p.kPages + off, valid);
      attn::cpAsync16(dV + r * LDS + ch * 8, p.vPages + off, valid);
    }
  };
  // Tiles loaded before the wait, each row but the last key's (rows past kvEnd zero-filled, as
  // in loadKV: their scores are masked, and 0 * garbage could be NaN). A separate loop, so the
  // streaming loop's loads stay as they were (with the skip in loadKV itself, 2026-11-29,
  // long contexts streamed up to 1.5x slower).
  const int early = p.earlyKv ? min(numTiles, STAGES - 1) : 0;
  for (int c = tid; c < early * BN * CHUNKS; c += NT) {
    const int tile = c / (BN * CHUNKS), r = c / CHUNKS % BN, ch = c % CHUNKS;
    const int j = kvStart + tile * BN + r;
    if (j == lastKey) continue;
    const bool valid = j < kvEnd;
    const int jj = valid ? j : kvStart;
    const int64_t page = p.kvIndices[pageBegin + jj / p.pageSize];
    const int64_t off = (page * p.pageSize + jj % p.pageSize) * rowStride + hkv * D + ch * 8;
    attn::cpAsync16(sK + (tile * BN + r) * LDS + ch * 8, p.kPages + off, valid);
    attn::cpAsync16(sV + (tile * BN + r) * LDS + ch * 8, p.vPages + off, valid);
  }
  if (early > 0) attn::cpAsyncCommit();
  if (p.earlyKv) {
    pdlWait();
    IVL_TRACE_GO;
  }

  const int lastTile = (lastKey - kvStart) / BN;
  const bool ownsLast = lastKey >= kvStart && lastKey < kvEnd;  // the split holding the new key
  if (p.qkv == nullptr) {
    // Q rows: the group's heads hkv*G .. hkv*G+G-1; rows >= G zero-filled.
    for (int c = tid; c < 16 * CHUNKS; c += NT) {
      const int r = c / CHUNKS, ch = c % CHUNKS;
      const bool valid = r < group;
      const bf16* src = p.q + int64_t(b) * p.qStride + (hkv * group + (valid ? r : 0)) * D + ch * 8;
      attn::cpAsync16(sQ + r * LDS + ch * 8, src, valid);
    }
    // The last key's row, if an early tile skipped it.
    if (ownsLast && lastTile < early && tid < CHUNKS) {
      const int64_t page = p.kvIndices[pageBegin + lastKey / p.pageSize];
      const int64_t off = (page * p.pageSize + lastKey % p.pageSize) * rowStride + hkv * D + tid * 8;
      const int r = lastKey - kvStart - lastTile * BN;
      attn::cpAsync16(sK + (lastTile * BN + r) * LDS + tid * 8, p.kPages + off, true);
      attn::cpAsync16(sV + (lastTile * BN + r) * LDS + tid * 8, p.vPages + off, true);
    }
  } else {
    // Rope here (DecodeRope): the group's q heads from the raw qkv row into sQ (rows >= G zero),
    // and, in the split holding it, the new key: roped k and v into the cache (this kernel is
    // its writer on the decode step) and into the early tile that skipped it.
    constexpr int HALF = D / 2;
    const bf16* row = p.qkv + int64_t(b) * (p.numQoHeads + 2 * p.numKvHeads) * D;
    const auto table = [&](const void* t, int i) {
      return p.ropeBf16Tables ? __bfloat162float(static_cast<const bf16*>(t)[int64_t(b) * HALF + i])
                              : static_cast<const float*>(t)[int64_t(b) * HALF + i];
    };
    for (int c = tid; c < 16 * HALF; c += NT) {
      const int r = c / HALF, i = c % HALF;
      bf16 lo = __float2bfloat16_rn(0.f), hi = lo;
      if (r < group) {
        const bf16* x = row + (hkv * group + r) * D;
        ropeRotate(__bfloat162float(x[i]), __bfloat162float(x[i + HALF]), table(p.ropeCos, i), table(p.ropeSin, i),
                   lo, hi);
      }
      sQ[r * LDS + i] = lo;
      sQ[r * LDS + i + HALF] = hi;
    }
    if (ownsLast) {
      const int64_t page = p.kvIndices[pageBegin + lastKey / p.pageSize];
      const int64_t off = (page * p.pageSize + lastKey % p.pageSize) * rowStride + hkv * D;
      bf16* kDst = const_cast<bf16*>(p.kPages) + off;  // the cache is written here, read elsewhere
      bf16* vDst = const_cast<bf16*>(p.vPages) + off;
      const bf16* kx = row + (p.numQoHeads + hkv) * D;
      const bf16* vx = row + (p.numQoHeads + p.numKvHeads + hkv) * D;
      const int r = lastKey - kvStart - lastTile * BN;
      const bool inEarly = lastTile < early;
      for (int i = tid; i < HALF; i += NT) {
        bf16 lo, hi;
        ropeRotate(__bfloat162float(kx[i]), __bfloat162float(kx[i + HALF]), table(p.ropeCos, i),
                   table(p.ropeSin, i), lo, hi);
        const bf16 v0 = vx[i], v1 = vx[i + HALF];
        kDst[i] = lo;
        kDst[i + HALF] = hi;
        vDst[i] = v0;
        vDst[i + HALF] = v1;
        if (inEarly) {
          bf16* sk = sK + (lastTile * BN + r) * LDS;
          bf16* sv = sV + (lastTile * BN + r) * LDS;
          sk[i] = lo;
          sk[i + HALF] = hi;
          sv[i] = v0;
          sv[i + HALF] = v1;
        }
      }
    }
    // The new key's cache row is read back below (cp.async, through L2) when no early tile took
    // it: the barrier orders this block's writes before those reads.
    __syncthreads();
  }
  for (int s = early; s < STAGES - 1; ++s) {
    if (s < numTiles) loadKV(s, s);
    attn::cpAsyncCommit();
  }
  // With early tiles, q's loads are in a group after theirs: commit it and wait for all here,
  // and the loop's waits hold as before.
  if (early > 0) {
    attn::cpAsyncCommit();
    attn::cpAsyncWait<0>();
  }
  IVL_TRACE_MARK(0);

  uint32_t qf[D / 16][4];
  float o[D / 8][4];
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.f, 0.f};
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;

  for (int t = 0; t < numTiles; ++t) {
    attn::cpAsyncWait<STAGES - 2>();
    __syncthreads();
    if (t + STAGES - 1 < numTiles) loadKV(t + STAGES - 1, (t + STAGES - 1) % STAGES);
    attn::cpAsyncCommit();
    if (t == 0) {
#pragma unroll
      for (int ks = 0; ks < D / 16; ++ks)
        attn::ldmatrixX4(qf[ks][0], qf[ks][1], qf[ks][2], qf[ks][3],
                         sQ + (lane & 15) * LDS + ks * 16 + (lane >> 4) * 8);
    }
    const int key0 = kvStart + t * BN + warp * 16;  // this warp's 16 keys
    if (key0 >= kvEnd) continue;
    const bf16* tK = sK + (t % STAGES) * BN * LDS + warp * 16 * LDS;
    const bf16* tV = sV + (t % STAGES) * BN * LDS + warp * 16 * LDS;

    float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
    for (int ks = 0; ks < D / 16; ks += 2) {
#pragma unroll
      for (int nb = 0; nb < 2; ++nb) {
        uint32_t b0, b1, b2, b3;
        attn::ldmatrixX4(b0, b1, b2, b3, tK + (nb * 8 + (lane & 7)) * LDS + ks * 16 + (lane >> 3) * 8);
        attn::mmaBf16(s[nb], qf[ks], b0, b1);
        attn::mmaBf16(s[nb], qf[ks + 1], b2, b3);
      }
    }
    if (key0 + 16 > kvEnd) {
#pragma unroll
      for (int nb = 0; nb < 2; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (key0 + nb * 8 + 2 * tq + (e & 1) >= kvEnd) s[nb][e] = -INFINITY;
    }
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const float mx =
          attn::quadMax(fmaxf(fmaxf(s[0][2 * rr], s[0][2 * rr + 1]), fmaxf(s[1][2 * rr], s[1][2 * rr + 1]))) *
          p.scaleLog2;
      const float mNew = fmaxf(m[rr], mx);
      const float mUse = mNew == -INFINITY ? 0.f : mNew;
      const float alpha = attn::fastExp2(m[rr] - mUse);
      m[rr] = mNew;
      float rowSum = 0.f;
#pragma unroll
      for (int nb = 0; nb < 2; ++nb) {
#pragma unroll
        for (int e = 2 * rr; e < 2 * rr + 2; ++e) {
          const float pv = attn::fastExp2(fmaf(s[nb][e], p.scaleLog2, -mUse));
          s[nb][e] = pv;
          rowSum += pv;
        }
      }
      l[rr] = l[rr] * alpha + rowSum;
#pragma unroll
      for (int db = 0; db < D / 8; ++db) {
        o[db][2 * rr] *= alpha;
        o[db][2 * rr + 1] *= alpha;
      }
    }
    const uint32_t a[4] = {attn::packBf16x2(s[0][0], s[0][1]), attn::packBf16x2(s[0][2], s[0][3]),
                           attn::packBf16x2(s[1][0], s[1][1]), attn::packBf16x2(s[1][2], s[1][3])};
#pragma unroll
    for (int db = 0; db < D / 8; db += 2) {
      uint32_t b0, b1, b2, b3;
      attn::ldmatrixX4Trans(b0, b1, b2, b3, tV + (lane & 15) * LDS + db * 8 + (lane >> 4) * 8);
      attn::mmaBf16(o[db], a, b0, b1);
      attn::mmaBf16(o[db + 1], a, b2, b3);
    }
  }
  attn::cpAsyncWait<0>();
  __syncthreads();  // tiles done: reuse shared memory for the cross-warp merge
  IVL_TRACE_MARK(1);

  float* sO = reinterpret_cast<float*>(smemRaw);  // [kWarps][16][OLD] unnormalized o
  float* sM = sO + kWarps * 16 * OLD;             // [kWarps][16] max (log2 domain)
  float* sL = sM + kWarps * 16;                   // [kWarps][16] sum
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int row = g + rr * 8;
    const float lt = attn::quadSum(l[rr]);
    if (tq == 0) {
      sM[warp * 16 + row] = m[rr];
      sL[warp * 16 + row] = lt;
    }
    if (row < group) {
#pragma unroll
      for (int db = 0; db < D / 8; ++db)
        *reinterpret_cast<float2*>(sO + (warp * 16 + row) * OLD + db * 8 + 2 * tq) =
            make_float2(o[db][2 * rr], o[db][2 * rr + 1]);
    }
  }
  __syncthreads();

  for (int idx = tid; idx < group * D; idx += NT) {
    const int r = idx / D, d = idx % D;
    float mMax = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mMax = fmaxf(mMax, sM[w * 16 + r]);
    const float mUse = mMax == -INFINITY ? 0.f : mMax;
    float num = 0.f, den = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float f = attn::fastExp2(sM[w * 16 + r] - mUse);  // 0 for a warp that saw no key
      num += f * sO[(w * 16 + r) * OLD + d];
      den += f * sL[w * 16 + r];
    }
    const float val = den > 0.f ? num / den : 0.f;
    const int hq = hkv * group + r;
    if (p.numSplits == 1) {
      p.out[(int64_t(b) * p.numQoHeads + hq) * D + d] = __float2bfloat16_rn(val);
    } else {
      const int64_t slot = (int64_t(b) * p.numQoHeads + hq) * p.numSplits + split;
      p.partO[slot * D + d] = val;
      if (d == 0) p.partLse[slot] = den > 0.f ? mMax + log2f(den) : -INFINITY;
    }
  }
  if constexpr (!FUSED_MERGE) return;
  if (p.numSplits == 1) return;

  // Fused merge: the last active split of (b, hkv) to arrive combines the group's partials, as
  // decodeMergeKernel would, and re-arms the counter. The next call, even launched early with
  // PDL, touches the workspace only after its wait, i.e. after this grid has completed.
  __shared__ int amLast;
  int* counter = p.mergeCounters + int64_t(b) * p.numKvHeads + hkv;
  __threadfence();
  __syncthreads();
  if (tid == 0) amLast = atomicAdd(counter, 1) == nActive - 1;
  __syncthreads();
  if (!amLast) return;
  __threadfence();
  mergeGroupInCta<D>(p, int64_t(b) * p.numQoHeads + hkv * group, group, nActive,
                     reinterpret_cast<float*>(smemRaw));
  if (tid == 0) *counter = 0;
}

// One CTA per (sequence, q head), HEAD_DIM threads: out = merge of the active splits.
// WAIT_PDL: launched with programmatic dependent launch: wait for the split kernel's grid
// (completion + memory flush) before reading its partials.
template <int HEAD_DIM, bool WAIT_PDL = false>
__global__ void __launch_bounds__(HEAD_DIM)
decodeMergeKernel(const DecodeParams p) {
  IVL_TRACE_SCOPE;
  if constexpr (WAIT_PDL) {
    pdlLaunchDependents();
    pdlWait();
    IVL_TRACE_GO;
  }
  const int bh = blockIdx.x;  // b * numQoHeads + hq
  const int b = bh / p.numQoHeads;
  const int d = threadIdx.x;
  const int kvLen = attn::pagedKvLen(p.kvIndptr, p.kvLastPageLen, p.pageSize, b);
  const int nActive = activeSplits(kvLen, p.chunkLen, p.numSplits);
  p.out[int64_t(bh) * HEAD_DIM + d] = __float2bfloat16_rn(mergeSplits<HEAD_DIM>(p, bh, d, nActive));
}

inline size_t alignUp(size_t x, size_t a) { return (x + a - 1) / a * a; }

inline size_t workspaceBytes(int batch, int numQoHeads, int D, int splits, bool fusedMerge) {
  if (splits <= 1) return 0;
  const size_t slots = size_t(batch) * numQoHeads * splits;
  return (fusedMerge ? kMergeCounterBytes : 0) + alignUp(slots * D * sizeof(float), 256) +
         alignUp(slots * sizeof(float), 256);
}

// INTERNVL_CUDA_ATTN_FUSED_MERGE=1: plans merge in the split kernel's last CTA instead of a
// merge kernel (read once). Off: measured slower in the decode step (docs/ENGINE.md).
inline bool fusedMergeByDefault() {
  static const bool on = envSwitch("INTERNVL_CUDA_ATTN_FUSED_MERGE", false);
  return on;
}

// INTERNVL_CUDA_ATTN_EARLY_KV=0: load every K/V tile after the PDL wait (read once).
inline bool earlyKvByDefault() {
  static const bool on = envSwitch("INTERNVL_CUDA_ATTN_EARLY_KV", true);
  return on;
}

// Launch the merge kernel with programmatic dependent launch? Only on compute capability 9.x,
// where the sm_90a machine code (which has the griddepcontrol.wait) runs: a newer GPU would JIT
// the compute_80 PTX, where the wait is compiled out. Lab, 2026-11-28: 40B batch 1 at 2k / 8k /
// 32k keys 14.4 / 21.8 / 49.2 us -> 12.3 / 19.7 / 45.5 us (the merge's launch latency hidden).
inline bool mergeWithPdl() {
  int dev = 0, major = 0;
  IVL_CUDA_CHECK(cudaGetDevice(&dev));
  IVL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  return major == 9;
}

// The split kernel and the merge launched with programmatic dependent launch (both wait before
// reading anything, and let their successor be scheduled at once): the attention's launch hides
// behind the qkv/RoPE kernel's tail and the o projection's GEMV streams its weights during the
// attention. On by default since the H200 run of 2026-11-29 (parity harness 517/517 both ways;
// 40B decode step bf16 20.02 -> 19.08 ms, int8 12.01 -> 11.96 ms); INTERNVL_CUDA_PDL_ATTENTION=0
// turns it off alone, INTERNVL_CUDA_PDL=0 with the rest of PDL.
inline bool decodeWithPdl() {
  static const bool allowed = envSwitch("INTERNVL_CUDA_PDL_ATTENTION", true);
  return allowed && pdlEnabled();
}

template <int D, int STAGES>
void launchDecode(const DecodeParams& p, int batch, cudaStream_t stream, bool pdl) {
  auto kernel = p.mergeCounters != nullptr ? decodeKernel<D, STAGES, true> : decodeKernel<D, STAGES, false>;
  const size_t smem = decodeSmemBytes<D, STAGES>();
  IVL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  launchMaybePdl(pdl, kernel, dim3(p.numSplits, p.numKvHeads, batch), dim3(kWarps * 32), smem, stream, p);
  if (p.numSplits == 1 || p.mergeCounters != nullptr) return;
  // With PDL the merge grid may be scheduled while the split kernel drains; its wait holds every
  // read of the partials until that grid has completed and flushed.
  auto merge = pdl ? decodeMergeKernel<D, true> : decodeMergeKernel<D, false>;
  launchMaybePdl(pdl, merge, dim3(batch * p.numQoHeads), dim3(D), 0, stream, p);
}

template <int STAGES>
void dispatchDecode(int D, const DecodeParams& p, int batch, cudaStream_t stream, bool pdl) {
  switch (D) {
    case 64: launchDecode<64, STAGES>(p, batch, stream, pdl); break;
    case 96: launchDecode<96, STAGES>(p, batch, stream, pdl); break;
    default: launchDecode<128, STAGES>(p, batch, stream, pdl); break;
  }
}

// Validated kernel parameters of pagedDecode (shared with the lab). `empty`: nothing to do.
inline DecodeParams decodeParams(const bf16* q, int64_t q_stride, bf16* out, int num_qo_heads,
                                 const PagedKV& kv, const DecodePlan& plan, void* workspace,
                                 size_t workspace_bytes, float sm_scale, bool* empty,
                                 const DecodeRope* rope = nullptr) {
  const auto arg = [](bool ok, const std::string& what) {
    ivl::require(ok, ivl::ErrorCode::InvalidArg, "pagedDecode: " + what);
  };
  const int D = kv.head_dim;
  arg(D == 64 || D == 96 || D == 128, "head_dim must be 64, 96 or 128, got " + std::to_string(D));
  arg(num_qo_heads > 0 && kv.num_kv_heads > 0 && num_qo_heads % kv.num_kv_heads == 0 &&
          num_qo_heads / kv.num_kv_heads <= 16,
      "num_qo_heads must be a multiple of num_kv_heads with group size <= 16 (got " +
          std::to_string(num_qo_heads) + "/" + std::to_string(kv.num_kv_heads) + ")");
  arg(kv.batch >= 0 && kv.page_size > 0, "batch >= 0 and page_size > 0 required");
  DecodeParams p{};
  *empty = kv.batch == 0;
  if (*empty) return p;
  arg(kv.batch <= 65535 && kv.num_kv_heads <= 65535, "batch and kv heads must be <= 65535");
  arg(plan.num_splits >= 1 && plan.chunk_len > 0 && plan.chunk_len % kTileKeys == 0 &&
          plan.num_splits <= 65535,
      "plan must come from planPagedDecode");
  arg(q && out && kv.k_pages && kv.v_pages && kv.kv_indptr && kv.kv_indices && kv.kv_last_page_len,
      "null pointer");
  arg(q_stride >= int64_t(num_qo_heads) * D && q_stride % 8 == 0,
      "q_stride must cover the heads and be a multiple of 8 elements");
  arg((reinterpret_cast<uintptr_t>(q) | reinterpret_cast<uintptr_t>(kv.k_pages) |
       reinterpret_cast<uintptr_t>(kv.v_pages)) % 16 == 0,
      "q and the pages must be 16-byte aligned");
  arg(!plan.fused_merge ||
          (int64_t(kv.batch) * kv.num_kv_heads <= kMaxMergeCounters && plan.num_splits <= kMaxFusedSplits),
      "plan must come from planPagedDecode (fused merge beyond the counters or splits)");
  const size_t need = workspaceBytes(kv.batch, num_qo_heads, D, plan.num_splits, plan.fused_merge);
  arg(workspace_bytes >= need && (need == 0 || workspace != nullptr) &&
          reinterpret_cast<uintptr_t>(workspace) % 256 == 0,
      "workspace of " + std::to_string(need) + " bytes (256-byte aligned) required, got " +
          std::to_string(workspace_bytes));
  p.q = q;
  p.qStride = q_stride;
  p.out = out;
  p.kPages = kv.k_pages;
  p.vPages = kv.v_pages;
  p.kvIndptr = kv.kv_indptr;
  p.kvIndices = kv.kv_indices;
  p.kvLastPageLen = kv.kv_last_page_len;
  p.pageSize = kv.page_size;
  p.numQoHeads = num_qo_heads;
  p.numKvHeads = kv.num_kv_heads;
  p.numSplits = plan.num_splits;
  p.chunkLen = plan.chunk_len;
  p.scaleLog2 = (sm_scale > 0.f ? sm_scale : 1.f / std::sqrt(float(D))) * 1.4426950408889634f;
  p.earlyKv = earlyKvByDefault();
  if (rope != nullptr) {
    arg(rope->qkv && rope->cos && rope->sin, "rope: null pointer");
    p.qkv = rope->qkv;
    p.ropeCos = rope->cos;
    p.ropeSin = rope->sin;
    p.ropeBf16Tables = rope->bf16_tables;
  }
  if (plan.num_splits > 1) {
    const size_t slots = size_t(kv.batch) * num_qo_heads * plan.num_splits;
    char* parts = static_cast<char*>(workspace) + (plan.fused_merge ? kMergeCounterBytes : 0);
    if (plan.fused_merge) p.mergeCounters = static_cast<int*>(workspace);
    p.partO = reinterpret_cast<float*>(parts);
    p.partLse = reinterpret_cast<float*>(parts + alignUp(slots * D * sizeof(float), 256));
  }
  return p;
}

}  // namespace decode_detail

#ifdef IVL_KERNEL_TRACE
cudaError_t decodeAttentionTraceArm(KernelTraceRecord* buf, unsigned* count, unsigned cap) {
  return kernel_trace::arm(buf, count, cap);
}
#endif

DecodePlan planPagedDecode(int batch, int num_qo_heads, int num_kv_heads, int head_dim,
                           int max_kv_len, int num_sms, int force_splits, int fused_merge) {
  using namespace decode_detail;
  DecodePlan plan;
  const int base = std::max(1, batch) * std::max(1, num_kv_heads);  // CTAs without splitting
  const int maxLen = std::max(1, max_kv_len);
  const int maxSplits = std::max(1, std::min(256, (maxLen + kMinChunk - 1) / kMinChunk));
  int splits = 1;
  if (force_splits > 0) {
    splits = force_splits;
  } else {
    // Resident CTAs: 2 per SM at ~100 KB of shared memory each. Pick the fewest splits whose
    // cost (waves of equal CTAs, each 1/splits of the work) is within 5% of the best.
    const int slots = std::max(1, num_sms) * 2;
    double best = 1e30;
    std::vector<double> cost(maxSplits + 1);
    for (int s = 1; s <= maxSplits; ++s) {
      const double waves = std::ceil(double(base) * s / slots);
      cost[s] = waves / s;
      best = std::min(best, cost[s]);
    }
    for (int s = 1; s <= maxSplits; ++s)
      if (cost[s] <= best * 1.05) { splits = s; break; }
  }
  // Chunk: multiple of the 64-key tile; recompute splits so none is empty at max_kv_len.
  int chunk = (maxLen + splits - 1) / splits;
  chunk = (chunk + kTileKeys - 1) / kTileKeys * kTileKeys;
  splits = std::max(1, (maxLen + chunk - 1) / chunk);
  plan.num_splits = splits;
  plan.chunk_len = chunk;
  plan.fused_merge = splits > 1 && (fused_merge < 0 ? fusedMergeByDefault() : fused_merge != 0) &&
                     int64_t(std::max(1, batch)) * num_kv_heads <= kMaxMergeCounters &&
                     splits <= kMaxFusedSplits;
  plan.workspace_bytes = workspaceBytes(batch, num_qo_heads, head_dim, splits, plan.fused_merge);
  return plan;
}

void pagedDecode(const __nv_bfloat16* q, int64_t q_stride, __nv_bfloat16* out,
                 int num_qo_heads, const PagedKV& kv, const DecodePlan& plan, void* workspace,
                 size_t workspace_bytes, float sm_scale, cudaStream_t stream, const DecodeRope* rope) {
  using namespace decode_detail;
  bool empty = false;
  const DecodeParams p = decodeParams(q, q_stride, out, num_qo_heads, kv, plan, workspace,
                                      workspace_bytes, sm_scale, &empty, rope);
  if (empty) return;
  dispatchDecode<kStages>(kv.head_dim, p, kv.batch, stream, decodeWithPdl());
}

}  // namespace ivl::cuda
