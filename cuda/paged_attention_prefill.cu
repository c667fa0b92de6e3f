// Prefill attention (flash-style, tensor cores): causal GQA over the paged KV cache for a
// ragged batch, and dense (non-causal for the ViT) attention over contiguous K/V.
// Contract and layouts: paged_attention.h. Lab: cuda/dev/paged_prefill.cu (v2 there).
//
// One CTA computes BM query rows of one (sequence, q head); each warp owns 16*MB rows for the
// whole loop (Q fragments stay in registers). K/V tiles of BN keys stream through shared
// memory by cp.async, STAGES deep (TileCfg); per tile each warp does S = Q K^T
// (m16n8k16 bf16 MMA, fp32 accumulate), an online-softmax update in registers (exp2 domain,
// FlashAttention-2: l kept per thread, reduced once at the end), and O += P V with P reused
// from the S accumulators as A fragments.
#include <cmath>
#include <string>

#include "attention_mma.h"
#include "check.h"
#include "paged_attention.h"

namespace ivl::cuda {
namespace prefill_detail {

using attn::bf16;

struct PrefillParams {
  const bf16* q;
  int64_t qStride;     // elements between consecutive query tokens
  const bf16* k;       // paged: k_pages; dense: token 0 of sequence 0
  const bf16* v;
  int64_t kStride;     // dense: elements between tokens; paged: unused (num_kv_heads*D)
  int64_t vStride;
  bf16* out;           // [tokens, numQoHeads, D]
  // paged mode
  const int32_t* qoIndptr;
  const int32_t* kvIndptr;
  const int32_t* kvIndices;
  const int32_t* kvLastPageLen;
  int pageSize;
  // dense mode
  int seqLen;
  int numQoHeads;
  int numKvHeads;
  float scaleLog2;     // sm_scale * log2(e)
};

// Tile configuration. NUM_WARPS: warps per CTA. MB: 16-row m-blocks per warp (2 = every
// K/V fragment loaded from shared memory feeds two MMAs: half the shared-memory traffic per
// FLOP, twice the registers). BN: keys per K/V tile. STAGES: K/V tiles in flight (cp.async).
// MIN_CTAS: CTAs per SM asked of the register allocator (__launch_bounds__ minBlocks).
// Q_IN_REGS: Q fragments loaded once into registers (else re-read from shared memory for every
// K/V tile: fewer registers, more shared-memory traffic).
// The CTA covers BM = 16 * MB * NUM_WARPS query rows.
template <int NUM_WARPS_, int MB_, int BN_, int STAGES_, int MIN_CTAS_ = 1, bool Q_IN_REGS_ = true>
struct TileCfg {
  static constexpr int NUM_WARPS = NUM_WARPS_, MB = MB_, BN = BN_, STAGES = STAGES_;
  static constexpr int MIN_CTAS = MIN_CTAS_;
  static constexpr bool Q_IN_REGS = Q_IN_REGS_;
  static constexpr int BM = 16 * MB * NUM_WARPS;
  static_assert(BN % 16 == 0 && STAGES >= 2 && MB >= 1, "bad tile configuration");
};

template <int HEAD_DIM, class C>
constexpr size_t prefillSmemBytes() {
  return size_t(C::BM + 2 * C::STAGES * C::BN) * attn::TileStride<HEAD_DIM>::value * sizeof(bf16);
}

// HEAD_DIM: 64, 96 or 128 (multiple of 32: K loads take two 16-wide k-steps per ldmatrix.x4).
// C: TileCfg. PAGED: K/V from the paged cache (else dense [seq, token, head, D] with strides).
// CAUSAL: query i of a sequence sees keys <= i + kv_len - qo_len.
template <int HEAD_DIM, class C, bool PAGED, bool CAUSAL>
__global__ void __launch_bounds__(C::NUM_WARPS * 32, C::MIN_CTAS)
prefillKernel(const PrefillParams p) {
  constexpr int D = HEAD_DIM;
  constexpr int MB = C::MB;
  constexpr int BM = C::BM;
  constexpr int BN = C::BN;
  constexpr int STAGES = C::STAGES;
  constexpr int LDS = attn::TileStride<D>::value;
  constexpr int CHUNKS = D / 8;  // 16-byte chunks per row
  constexpr int NT = C::NUM_WARPS * 32;
  constexpr int NB = BN / 8;     // 8-key n-blocks of S per tile
  static_assert(D % 32 == 0, "head_dim must be a multiple of 32");

  extern __shared__ __align__(16) unsigned char smemRaw[];
  bf16* sQ = reinterpret_cast<bf16*>(smemRaw);  // [BM][LDS]
  bf16* sK = sQ + BM * LDS;                     // [STAGES][BN][LDS]
  bf16* sV = sK + STAGES * BN * LDS;            // [STAGES][BN][LDS]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, tq = lane & 3;
  const int h = blockIdx.y, b = blockIdx.z;
  const int group = p.numQoHeads / p.numKvHeads;
  const int hkv = h / group;

  int qoStart, qoLen, kvLen, pageBegin = 0;
  if constexpr (PAGED) {
    qoStart = p.qoIndptr[b];
    qoLen = p.qoIndptr[b + 1] - qoStart;
    pageBegin = p.kvIndptr[b];
    kvLen = attn::pagedKvLen(p.kvIndptr, p.kvLastPageLen, p.pageSize, b);
  } else {
    qoStart = b * p.seqLen;
    qoLen = kvLen = p.seqLen;
  }
  const int causalOffset = kvLen - qoLen;  // query row i sits at key position i + offset
  const int64_t kvRowStride = PAGED ? int64_t(p.numKvHeads) * D : 0;

  // Heaviest (last, for causal) tiles first; the loop covers qo_len > gridDim.x * BM too.
  for (int mTile = gridDim.x - 1 - blockIdx.x; mTile * BM < qoLen; mTile += gridDim.x) {
    const int row0 = mTile * BM;
    const int rowLast = min(qoLen, row0 + BM) - 1;
    const int kvEnd = CAUSAL ? max(0, min(kvLen, rowLast + causalOffset + 1)) : kvLen;
    const int numTiles = (kvEnd + BN - 1) / BN;

    // Q tile -> shared (rows past qo_len zero-filled); part of the first cp.async group.
    for (int c = tid; c < BM * CHUNKS; c += NT) {
      const int r = c / CHUNKS, ch = c % CHUNKS;
      const bool valid = row0 + r < qoLen;
      const bf16* src =
          p.q + int64_t(qoStart + (valid ? row0 + r : 0)) * p.qStride + h * D + ch * 8;
      attn::cpAsync16(sQ + r * LDS + ch * 8, src, valid);
    }
    // K/V tile `tile` -> stage `stage`; keys >= kvEnd are zero-filled (V must not hold
    // garbage: 0 * NaN would poison the output).
    auto loadKV = [&](int tile, int stage) {
      bf16* dK = sK + stage * BN * LDS;
      bf16* dV = sV + stage * BN * LDS;
      for (int c = tid; c < BN * CHUNKS; c += NT) {
        const int r = c / CHUNKS, ch = c % CHUNKS;
        const int j = tile * BN + r;
        const bool valid = j < kvEnd;
        const int jj = valid ? j : 0;
        int64_t offK, offV;
        if constexpr (PAGED) {
          const int64_t page = p.kvIndices[pageBegin + jj / p.pageSize];
          offK = offV = (page * p.pageSize + jj % p.pageSize) * kvRowStride + hkv * D + ch * 8;
        } else {
          offK = int64_t(qoStart + jj) * p.kStride + hkv * D + ch * 8;
          offV = int64_t(qoStart + jj) * p.vStride + hkv * D + ch * 8;
        }
        attn::cpAsync16(dK + r * LDS + ch * 8, p.k + offK, valid);
        attn::cpAsync16(dV + r * LDS + ch * 8, p.v + offV, valid);
      }
    };

    for (int s = 0; s < STAGES - 1; ++s) {
      if (s < numTiles) loadKV(s, s);
      attn::cpAsyncCommit();
    }

    constexpr int QF = C::Q_IN_REGS ? D / 16 : 2;  // k-steps of Q held in registers
    uint32_t qf[MB][QF][4];       // this warp's 16*MB query rows as A fragments
    float o[MB][D / 8][4];        // output accumulators
    float m[MB][2], l[MB][2];     // running max (log2 domain) / this thread's partial sum,
                                  // rows g and g+8 of each m-block
#pragma unroll
    for (int mb = 0; mb < MB; ++mb) {
      m[mb][0] = m[mb][1] = -INFINITY;
      l[mb][0] = l[mb][1] = 0.f;
#pragma unroll
      for (int i = 0; i < D / 8; ++i) o[mb][i][0] = o[mb][i][1] = o[mb][i][2] = o[mb][i][3] = 0.f;
    }

    const int warpRow0 = row0 + warp * 16 * MB;  // first query row of this warp
    if (numTiles == 0) {
      attn::cpAsyncWait<0>();
      __syncthreads();
    }
    for (int t = 0; t < numTiles; ++t) {
      attn::cpAsyncWait<STAGES - 2>();
      __syncthreads();
      // Prefetch tile t+STAGES-1 into the stage tile t-1 used (everyone is past it).
      if (t + STAGES - 1 < numTiles) loadKV(t + STAGES - 1, (t + STAGES - 1) % STAGES);
      attn::cpAsyncCommit();
      // Q fragment (m-block mb, k-step ks) from shared memory.
      auto loadQ = [&](uint32_t(&f)[4], int mb, int ks) {
        attn::ldmatrixX4(f[0], f[1], f[2], f[3],
                         sQ + (warp * 16 * MB + mb * 16 + (lane & 15)) * LDS + ks * 16 + (lane >> 4) * 8);
      };
      if (C::Q_IN_REGS && t == 0) {
#pragma unroll
        for (int mb = 0; mb < MB; ++mb)
#pragma unroll
          for (int ks = 0; ks < QF; ++ks) loadQ(qf[mb][ks], mb, ks);
      }
      const int kv0 = t * BN;
      // Causal: a tile wholly after this warp's last row contributes nothing.
      if (CAUSAL && kv0 > warpRow0 + 16 * MB - 1 + causalOffset) continue;
      if (warpRow0 >= qoLen) continue;  // warp has no valid rows (last tile)

      const bf16* tK = sK + (t % STAGES) * BN * LDS;
      const bf16* tV = sV + (t % STAGES) * BN * LDS;

      // S = Q K^T: 16*MB rows x BN keys; each K fragment serves the MB m-blocks.
      float s[MB][NB][4];
#pragma unroll
      for (int mb = 0; mb < MB; ++mb)
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) s[mb][nb][0] = s[mb][nb][1] = s[mb][nb][2] = s[mb][nb][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < D / 16; ks += 2) {
        const int k0 = C::Q_IN_REGS ? ks : 0;  // index of k-step ks in qf
        if constexpr (!C::Q_IN_REGS) {
#pragma unroll
          for (int mb = 0; mb < MB; ++mb) {
            loadQ(qf[mb][0], mb, ks);
            loadQ(qf[mb][1], mb, ks + 1);
          }
        }
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) {
          uint32_t b0, b1, b2, b3;
          attn::ldmatrixX4(b0, b1, b2, b3,
                           tK + (nb * 8 + (lane & 7)) * LDS + ks * 16 + (lane >> 3) * 8);
#pragma unroll
          for (int mb = 0; mb < MB; ++mb) {
            attn::mmaBf16(s[mb][nb], qf[mb][k0], b0, b1);
            attn::mmaBf16(s[mb][nb], qf[mb][k0 + 1], b2, b3);
          }
        }
      }
      // Mask keys past kvEnd and (causal) after each row's position.
      const bool needMask =
          (kv0 + BN > kvEnd) || (CAUSAL && kv0 + BN - 1 > warpRow0 + causalOffset);
      if (needMask) {
#pragma unroll
        for (int mb = 0; mb < MB; ++mb)
#pragma unroll
          for (int nb = 0; nb < NB; ++nb)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int j = kv0 + nb * 8 + 2 * tq + (e & 1);
              const int row = warpRow0 + mb * 16 + g + (e >> 1) * 8;
              const bool ok = j < kvEnd && (!CAUSAL || j <= row + causalOffset);
              if (!ok) s[mb][nb][e] = -INFINITY;
            }
      }
      // Online softmax, rows g (e = 0,1) and g+8 (e = 2,3) of each m-block.
#pragma unroll
      for (int mb = 0; mb < MB; ++mb) {
#pragma unroll
        for (int rr = 0; rr < 2; ++rr) {
          float mx = -INFINITY;
#pragma unroll
          for (int nb = 0; nb < NB; ++nb)
            mx = fmaxf(mx, fmaxf(s[mb][nb][2 * rr], s[mb][nb][2 * rr + 1]));
          mx = attn::quadMax(mx) * p.scaleLog2;
          const float mNew = fmaxf(m[mb][rr], mx);
          const float mUse = mNew == -INFINITY ? 0.f : mNew;  // fully masked so far: keep 0s
          const float alpha = attn::fastExp2(m[mb][rr] - mUse);
          m[mb][rr] = mNew;
          float rowSum = 0.f;
#pragma unroll
          for (int nb = 0; nb < NB; ++nb) {
#pragma unroll
            for (int e = 2 * rr; e < 2 * rr + 2; ++e) {
              const float pv = attn::fastExp2(fmaf(s[mb][nb][e], p.scaleLog2, -mUse));
              s[mb][nb][e] = pv;
              rowSum += pv;
            }
          }
          l[mb][rr] = l[mb][rr] * alpha + rowSum;
#pragma unroll
          for (int db = 0; db < D / 8; ++db) {
            o[mb][db][2 * rr] *= alpha;
            o[mb][db][2 * rr + 1] *= alpha;
          }
        }
      }
      // O += P V: BN/16 k-steps of 16 keys; V fragments by transposed ldmatrix, 2 n-blocks
      // each, shared by the MB m-blocks.
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t a[MB][4];
#pragma unroll
        for (int mb = 0; mb < MB; ++mb) {
          a[mb][0] = attn::packBf16x2(s[mb][2 * kk][0], s[mb][2 * kk][1]);
          a[mb][1] = attn::packBf16x2(s[mb][2 * kk][2], s[mb][2 * kk][3]);
          a[mb][2] = attn::packBf16x2(s[mb][2 * kk + 1][0], s[mb][2 * kk + 1][1]);
          a[mb][3] = attn::packBf16x2(s[mb][2 * kk + 1][2], s[mb][2 * kk + 1][3]);
        }
#pragma unroll
        for (int db = 0; db < D / 8; db += 2) {
          uint32_t b0, b1, b2, b3;
          attn::ldmatrixX4Trans(b0, b1, b2, b3,
                                tV + (kk * 16 + (lane & 15)) * LDS + db * 8 + (lane >> 4) * 8);
#pragma unroll
          for (int mb = 0; mb < MB; ++mb) {
            attn::mmaBf16(o[mb][db], a[mb], b0, b1);
            attn::mmaBf16(o[mb][db + 1], a[mb], b2, b3);
          }
        }
      }
    }
    // Drain (only empty groups can be pending) and make the stages reusable.
    attn::cpAsyncWait<0>();
    __syncthreads();

    // Epilogue: O / l -> bf16. A row with no visible key (only for malformed input) gets 0.
#pragma unroll
    for (int mb = 0; mb < MB; ++mb) {
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        const float lt = attn::quadSum(l[mb][rr]);
        const float inv = lt > 0.f ? 1.f / lt : 0.f;
        const int row = warpRow0 + mb * 16 + g + rr * 8;
        if (row < qoLen) {
          bf16* dst = p.out + (int64_t(qoStart + row) * p.numQoHeads + h) * D + 2 * tq;
#pragma unroll
          for (int db = 0; db < D / 8; ++db)
            *reinterpret_cast<uint32_t*>(dst + db * 8) =
                attn::packBf16x2(o[mb][db][2 * rr] * inv, o[mb][db][2 * rr + 1] * inv);
        }
      }
    }
  }
}

// Production configurations (cuda/dev/paged_prefill.cu measures the alternatives; NOTES.md).
// D = 96, 128: 4 warps x 16 rows, 64-key tiles, double-buffered (lab v2: ViT-6B 232 TFLOP/s,
// best of 8 configurations). D = 64: 2 m-blocks per warp (128 rows per CTA), 64-key tiles
// (lab v6: ViT-300M 218 vs 181 TFLOP/s, 1B causal 151 vs 134; at D = 128 the same tiling
// spills and loses).
using ProdCfg = TileCfg<4, 1, 64, 2>;
using ProdCfgD64 = TileCfg<4, 2, 64, 2>;

template <int D, class C, bool PAGED, bool CAUSAL>
void launchPrefill(const PrefillParams& p, int gridY, int gridZ, int maxRows, cudaStream_t stream) {
  auto kernel = prefillKernel<D, C, PAGED, CAUSAL>;
  const size_t smem = prefillSmemBytes<D, C>();
  IVL_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const int gridX = (maxRows + C::BM - 1) / C::BM;
  kernel<<<dim3(gridX, gridY, gridZ), C::NUM_WARPS * 32, smem, stream>>>(p);
  IVL_CUDA_CHECK(cudaGetLastError());
}

// Head-dim / causal dispatch of one configuration (C64 for head_dim 64). gridY = q heads,
// gridZ = sequences, maxRows = longest query run (sizes gridX).
template <bool PAGED, class C = ProdCfg, class C64 = ProdCfgD64>
void dispatchPrefill(int D, bool causal, const PrefillParams& p, int gridY, int gridZ, int maxRows,
                     cudaStream_t stream) {
#define IVL_PREFILL_CASE(DIM, CFG)                                                      \
  causal ? launchPrefill<DIM, CFG, PAGED, true>(p, gridY, gridZ, maxRows, stream)       \
         : launchPrefill<DIM, CFG, PAGED, false>(p, gridY, gridZ, maxRows, stream)
  switch (D) {
    case 64: IVL_PREFILL_CASE(64, C64); break;
    case 96: IVL_PREFILL_CASE(96, C); break;
    default: IVL_PREFILL_CASE(128, C); break;
  }
#undef IVL_PREFILL_CASE
}

inline void requireArg(bool ok, const char* fn, const std::string& what) {
  ivl::require(ok, ivl::ErrorCode::InvalidArg, std::string(fn) + ": " + what);
}

inline void checkHeads(const char* fn, int D, int numQoHeads, int numKvHeads) {
  requireArg(D == 64 || D == 96 || D == 128, fn,
             "head_dim must be 64, 96 or 128, got " + std::to_string(D));
  requireArg(numQoHeads > 0 && numKvHeads > 0 && numQoHeads % numKvHeads == 0, fn,
             "num_qo_heads must be a positive multiple of num_kv_heads (got " +
                 std::to_string(numQoHeads) + "/" + std::to_string(numKvHeads) + ")");
}

inline bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

inline float log2Scale(float smScale, int D) {
  const float s = smScale > 0.f ? smScale : 1.f / std::sqrt(float(D));
  return s * 1.4426950408889634f;
}

// Validated kernel parameters of pagedPrefill / denseAttention (shared with the lab, which
// launches the same parameters through other configurations). `empty` is set when there is
// nothing to do.
inline PrefillParams pagedParams(const bf16* q, int64_t q_stride, bf16* out,
                                 const int32_t* qo_indptr, int num_qo_heads, int max_qo_len,
                                 const PagedKV& kv, float sm_scale, bool* empty) {
  const char* fn = "pagedPrefill";
  const int D = kv.head_dim;
  checkHeads(fn, D, num_qo_heads, kv.num_kv_heads);
  requireArg(kv.batch >= 0 && kv.page_size > 0 && max_qo_len >= 0, fn,
             "batch >= 0, page_size > 0, max_qo_len >= 0 required");
  *empty = kv.batch == 0 || max_qo_len == 0;
  PrefillParams p{};
  if (*empty) return p;
  requireArg(q && out && qo_indptr && kv.k_pages && kv.v_pages && kv.kv_indptr && kv.kv_indices &&
                 kv.kv_last_page_len,
             fn, "null pointer");
  requireArg(q_stride >= int64_t(num_qo_heads) * D && q_stride % 8 == 0, fn,
             "q_stride must cover the heads and be a multiple of 8 elements");
  requireArg(aligned16(q) && aligned16(out) && aligned16(kv.k_pages) && aligned16(kv.v_pages), fn,
             "q, out and the pages must be 16-byte aligned");
  requireArg(kv.batch <= 65535 && num_qo_heads <= 65535, fn, "batch and heads must be <= 65535");
  p.q = q;
  p.qStride = q_stride;
  p.k = kv.k_pages;
  p.v = kv.v_pages;
  p.out = out;
  p.qoIndptr = qo_indptr;
  p.kvIndptr = kv.kv_indptr;
  p.kvIndices = kv.kv_indices;
  p.kvLastPageLen = kv.kv_last_page_len;
  p.pageSize = kv.page_size;
  p.numQoHeads = num_qo_heads;
  p.numKvHeads = kv.num_kv_heads;
  p.scaleLog2 = log2Scale(sm_scale, D);
  return p;
}

inline PrefillParams denseParams(const bf16* q, int64_t q_stride, const bf16* k, int64_t k_stride,
                                 const bf16* v, int64_t v_stride, bf16* out, int num_seqs,
                                 int seq_len, int num_qo_heads, int num_kv_heads, int head_dim,
                                 float sm_scale, bool* empty) {
  const char* fn = "denseAttention";
  const int D = head_dim;
  checkHeads(fn, D, num_qo_heads, num_kv_heads);
  requireArg(num_seqs >= 0 && seq_len >= 0, fn, "num_seqs and seq_len must be >= 0");
  *empty = num_seqs == 0 || seq_len == 0;
  PrefillParams p{};
  if (*empty) return p;
  requireArg(q && k && v && out, fn, "null pointer");
  requireArg(q_stride >= int64_t(num_qo_heads) * D && k_stride >= int64_t(num_kv_heads) * D &&
                 v_stride >= int64_t(num_kv_heads) * D,
             fn, "token strides must cover all heads");
  requireArg(q_stride % 8 == 0 && k_stride % 8 == 0 && v_stride % 8 == 0, fn,
             "token strides must be multiples of 8 elements (16 bytes)");
  requireArg(aligned16(q) && aligned16(k) && aligned16(v) && aligned16(out), fn,
             "q, k, v and out must be 16-byte aligned");
  requireArg(num_seqs <= 65535 && num_qo_heads <= 65535, fn,
             "num_seqs and heads must be <= 65535");
  requireArg(int64_t(num_seqs) * seq_len <= INT32_MAX, fn, "too many tokens");
  p.q = q;
  p.qStride = q_stride;
  p.k = k;
  p.v = v;
  p.kStride = k_stride;
  p.vStride = v_stride;
  p.out = out;
  p.seqLen = seq_len;
  p.numQoHeads = num_qo_heads;
  p.numKvHeads = num_kv_heads;
  p.scaleLog2 = log2Scale(sm_scale, D);
  return p;
}

}  // namespace prefill_detail

void pagedPrefill(const __nv_bfloat16* q, int64_t q_stride, __nv_bfloat16* out,
                  const int32_t* qo_indptr, int num_qo_heads, int max_qo_len, const PagedKV& kv,
                  bool causal, float sm_scale, cudaStream_t stream) {
  using namespace prefill_detail;
  bool empty = false;
  const PrefillParams p =
      pagedParams(q, q_stride, out, qo_indptr, num_qo_heads, max_qo_len, kv, sm_scale, &empty);
  if (empty) return;
  dispatchPrefill<true>(kv.head_dim, causal, p, num_qo_heads, kv.batch, max_qo_len, stream);
}

void denseAttention(const __nv_bfloat16* q, int64_t q_stride, const __nv_bfloat16* k,
                    int64_t k_stride, const __nv_bfloat16* v, int64_t v_stride,
                    __nv_bfloat16* out, int num_seqs, int seq_len, int num_qo_heads,
                    int num_kv_heads, int head_dim, bool causal, float sm_scale,
                    cudaStream_t stream) {
  using namespace prefill_detail;
  bool empty = false;
  const PrefillParams p = denseParams(q, q_stride, k, k_stride, v, v_stride, out, num_seqs, seq_len,
                                      num_qo_heads, num_kv_heads, head_dim, sm_scale, &empty);
  if (empty) return;
  dispatchPrefill<false>(head_dim, causal, p, num_qo_heads, num_seqs, seq_len, stream);
}

}  // namespace ivl::cuda
