// W8A16 GEMM: int8 weights (packed as in quantize_int8.h), bf16 activations, fp32 accumulate,
// bf16 output. gemm_w8a16.h describes the two kernels; the lab in cuda/dev/w8a16 validates and
// times them (README there holds the measurements and the losing variants).
//
// Both kernels use the same trick for the MMA: a packed 16-byte chunk per lane holds, for 16
// weight rows, the 4 bytes each of the m16n8k16 fragments needs at 2 k-steps, in a k order
// permuted inside each 32-column block so that the matching 8 activations of a lane are also one
// 16-byte load. int8 -> bf16 is exact (|q| <= 127 fits bf16's 8-bit significand), so the MMA
// multiplies exact integers by bf16 activations into fp32, and scales are applied in fp32.
#include "gemm_w8a16.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <optional>
#include <string>
#include <type_traits>

#include "check.h"
#include "gemm_w8a16_tuning.h"
#include "kernel_trace.h"
#include "ld_stream.h"
#include "pdl.h"
#include "silu_mul.h"

namespace ivl::cuda {
namespace w8a16 {

using bf16 = __nv_bfloat16;

// ---- device helpers -----------------------------------------------------------------------

// Four biased bytes (q + 128) -> two bf16x2: lo = (B0, B2) - 128, hi = (B1, B3) - 128.
// 0x4B000000 | B is the float 2^23 + B; subtracting 2^23 + 128 leaves B - 128 exactly, whose
// low 16 bits are zero, so the bf16 is the float's high half (marlin's int8 -> bf16 path).
__device__ __forceinline__ void dequant4(uint32_t q, uint32_t& lo, uint32_t& hi) {
  constexpr uint32_t kBase = 0x4B000000u;
  const float f0 = __uint_as_float(__byte_perm(q, kBase, 0x7650)) - 8388736.f;
  const float f1 = __uint_as_float(__byte_perm(q, kBase, 0x7652)) - 8388736.f;
  const float f2 = __uint_as_float(__byte_perm(q, kBase, 0x7651)) - 8388736.f;
  const float f3 = __uint_as_float(__byte_perm(q, kBase, 0x7653)) - 8388736.f;
  lo = __byte_perm(__float_as_uint(f0), __float_as_uint(f1), 0x7632);
  hi = __byte_perm(__float_as_uint(f2), __float_as_uint(f3), 0x7632);
}

// D = A (16x16 bf16, row) * B (16x8 bf16, col) + D, fp32.
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void l2Prefetch(const void* p) {
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}

__device__ __forceinline__ uint32_t smemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16-byte async copy global -> shared; when !valid the shared bytes are zero-filled and nothing
// is read (gmem must still be a mapped address).
__device__ __forceinline__ void cpAsync16(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(smem)), "l"(gmem),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ uint4 lds128(const uint4* p) {
  uint4 r;
  asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "r"(smemAddr(p)));
  return r;
}

// ---- decode: weight-streaming skinny GEMM (m <= 32) ----------------------------------------

// One slot of the deferred norm's sums of squares: 32 lanes' values (y² of 32 consecutive
// outputs of a row), added by xor shuffles. gemmW8A16Residual and w8a16RmsPrep both sum so, so
// their slots carry the same bits.
__device__ __forceinline__ float rmsSlotSum(float v) {
#pragma unroll
  for (int off = 16; off >= 1; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
  return v;
}

// The deferred norm's input without a residual GEMV before it (a run of layers' first):
// nextX = bf16(x ⊙ g) and the slots of x², as gemmW8A16Residual writes them. One warp per 32
// outputs of a row.
__global__ void rmsPrepKernel(const bf16* __restrict__ x, int m, int n, const float* __restrict__ g,
                              bf16* __restrict__ nextX, float* __restrict__ squares) {
  const int q = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  const int chunks = (n + 31) / 32;
  if (q >= chunks * m) return;
  const int mm = q / chunks, c = q - mm * chunks, j = c * 32 + lane;
  float sq = 0.f;
  if (j < n) {
    const size_t at = static_cast<size_t>(mm) * n + j;
    const float f = __bfloat162float(x[at]);
    nextX[at] = __float2bfloat16_rn(f * g[j]);
    sq = f * f;
  }
  const float v = rmsSlotSum(sq);
  if (lane == 0) squares[static_cast<size_t>(c) * m + mm] = v;
}

struct DecodeParams {
  const uint4* qw;       // packed weights, 128 uint4 per [tile][group] unit
  const float* scales;   // PerChannel [Np] or PerGroup128 [Np/16][G][16]
  const bf16* x;         // [m, k]
  const bf16* bias;      // [n] or null
  bf16* y;               // [m, n]
  float* partial;        // [splitK][m][n] split-K partial sums (splitK > 1)
  int* counters;         // [gridDim.x] arrival counters, zero between calls (splitK > 1)
  int m, n, k, groups, tilesN;
  int tb;                // tiles (16 rows) per block; warps = tb tiles x (8 / tb) K lanes
  int splitK;            // blocks along K
  int l2Ahead;           // units per warp prefetched into L2 beyond the DEPTH in registers
  int tilesF;            // SILU: tiles of each half of the stacked [gate | up] weight (N = 32 tilesF)
  const float* rmsSq;    // RMS: [rmsSlots][m] partial sums of squares of the rows whose 1/rms
  int rmsSlots;          //      scales the outputs (x is their x ⊙ g), from the residual form
  float rmsEps;          // RMS: the RMSNorm epsilon
  int residual;          // y += the product (y holds the residual rows), rounded as gemmW8A16 + add
  const float* nextW;    // residual: the next RMSNorm's weight [n], or null
  bf16* nextX;           // residual: [m, n] receives bf16(y ⊙ nextW), the next RMS form's x
  float* nextSq;         // residual with nextW: [ceil(n / 32)][m] sums of y², one per 32 outputs
#ifdef IVL_KERNEL_TRACE
  int prologueUnits;     // trace build: ring units loaded before the PDL wait (0: all DEPTH)
#endif
};

constexpr int kDecodeThreads = 256;

// MT:      activation row blocks of 8 (the MMA's n side): handles m <= 8 * MT.
// GROUPED: per-group scales (applied per 128-column unit) instead of per-channel (epilogue).
// DEPTH:   weight units (2 KB per warp, 64 B per lane) a warp keeps in registers; DEPTH - 1 are in
//          flight while one is consumed.
// TPW:     16-row tiles per warp (1 or 2): with 2, each activation fragment a warp loads feeds the
//          MMAs of two tiles, halving the activation reads per weight byte (what limits m = 9..32;
//          lab README). p.tb then counts warp tiles, TPW tiles each.
//
// Two blocks per SM, asked of ptxas: the GEMV's rate follows the weight bytes in flight per SM,
// so a variant given more than 128 registers a thread runs one block per SM and loses half of
// them. Without the bound ptxas gave 158 / 162 registers to MT = 2, TPW = 2 (the launcher's
// m = 9..16 choice), and, the other way round, only 64-80 to the depth-2 variants, which then
// streamed 1.3-2.5x slower than they do bounded (lab README). Only the lab's MT >= 3 variants
// with a 4-unit ring or two tiles per warp, which would spill, keep one block.
template <int MT, int DEPTH, int TPW>
constexpr int decodeMinBlocks() {
  return MT >= 3 && (DEPTH == 4 || TPW == 2) ? 1 : 2;
}

// Each of a lane's MT activation rows (mt * 8 + gi, the MMA's n side): where its 8 columns at
// ti * 8 start, and whether the row exists (rows >= m read row 0 and are never stored).
template <int MT>
__device__ __forceinline__ void activationRows(const DecodeParams& p, int gi, int ti, const bf16* (&xRow)[MT],
                                               bool (&rowOk)[MT]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    const int r = mt * 8 + gi;
    rowOk[mt] = r < p.m;
    xRow[mt] = p.x + static_cast<size_t>(rowOk[mt] ? r : 0) * p.k + ti * 8;
  }
}

// One 2 KB weight unit (128 columns of K, group g) of each of a warp's TPW tiles against the
// activation rows: t += W_tile(unit) · x^T, per-group scaled into acc by the caller's order
// (see decodeKernel's compute).
template <int MT, int TPW>
__device__ __forceinline__ void unitMma(float (&t)[TPW][MT][4], const uint4 (&w)[TPW][4], int g, int k, int ti,
                                        const bf16* const (&xRow)[MT], const bool (&rowOk)[MT]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    uint32_t a0[TPW][4], a1[TPW][4];  // A fragments of k-steps 0 and 1 (rows gi / gi+8 of each tile)
#pragma unroll
    for (int tt = 0; tt < TPW; ++tt) {
      dequant4(w[tt][j].x, a0[tt][0], a0[tt][1]);
      dequant4(w[tt][j].y, a0[tt][2], a0[tt][3]);
      dequant4(w[tt][j].z, a1[tt][0], a1[tt][1]);
      dequant4(w[tt][j].w, a1[tt][2], a1[tt][3]);
    }
    const int kk = g * kW8A16Group + j * 32;
    const bool kOk = kk + ti * 8 < k;  // K % 8 == 0: a lane's 8 columns are all in or all out
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      uint4 xv = make_uint4(0u, 0u, 0u, 0u);
      if (rowOk[mt] && kOk) xv = __ldg(reinterpret_cast<const uint4*>(xRow[mt] + kk));
#pragma unroll
      for (int tt = 0; tt < TPW; ++tt) {
        mma16816(t[tt][mt], a0[tt], xv.x, xv.y);
        mma16816(t[tt][mt], a1[tt], xv.z, xv.w);
      }
    }
  }
}

// A unit's sums t into the warp's accumulators: per-group scaled (s: the unit's scales for rows
// gi and gi + 8 of each tile), per-channel added (scaled once in the epilogue).
template <int MT, int TPW, bool GROUPED>
__device__ __forceinline__ void foldUnit(float (&acc)[TPW][MT][4], const float (&t)[TPW][MT][4],
                                         const float (&s)[TPW][2]) {
#pragma unroll
  for (int tt = 0; tt < TPW; ++tt)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      if constexpr (GROUPED) {
        acc[tt][mt][0] = fmaf(t[tt][mt][0], s[tt][0], acc[tt][mt][0]);
        acc[tt][mt][1] = fmaf(t[tt][mt][1], s[tt][0], acc[tt][mt][1]);
        acc[tt][mt][2] = fmaf(t[tt][mt][2], s[tt][1], acc[tt][mt][2]);
        acc[tt][mt][3] = fmaf(t[tt][mt][3], s[tt][1], acc[tt][mt][3]);
      } else {
        acc[tt][mt][0] += t[tt][mt][0];
        acc[tt][mt][1] += t[tt][mt][1];
        acc[tt][mt][2] += t[tt][mt][2];
        acc[tt][mt][3] += t[tt][mt][3];
      }
    }
}

// A warp's accumulators into the block's reduction buffer red[warp][tile row][activation]:
// acc[tt][mt][0..1] = (row gi, activations mt*8 + 2ti, +1), [2..3] = row gi + 8.
template <int MT, int TPW>
__device__ __forceinline__ void accToRed(float (&red)[8][16 * TPW][MT * 8 + 1], const float (&acc)[TPW][MT][4],
                                         int warp, int gi, int ti) {
#pragma unroll
  for (int tt = 0; tt < TPW; ++tt)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      red[warp][tt * 16 + gi][mt * 8 + 2 * ti] = acc[tt][mt][0];
      red[warp][tt * 16 + gi][mt * 8 + 2 * ti + 1] = acc[tt][mt][1];
      red[warp][tt * 16 + gi + 8][mt * 8 + 2 * ti] = acc[tt][mt][2];
      red[warp][tt * 16 + gi + 8][mt * 8 + 2 * ti + 1] = acc[tt][mt][3];
    }
}

// Split-K, once the block's partials are written: whether it is the last block of its column
// of blocks to arrive (block-uniform), the one that sums the partials and re-arms the counter.
__device__ __forceinline__ bool lastToArrive(int* counter, int arrivals) {
  __shared__ int amLast;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) amLast = atomicAdd(counter, 1) == arrivals - 1;
  __syncthreads();
  if (!amLast) return false;
  __threadfence();
  return true;
}
__device__ __forceinline__ bool lastToArrive(const DecodeParams& p) { return lastToArrive(p.counters + blockIdx.x, p.splitK); }

// The SILU form's end (decodeKernel): block b's outputs y[mm][b·tb/2·16 + j], j < tb/2·16, from
// the gate rows in warp tiles j / 16 and the up rows tb/2 tiles further on. Unsplit, the block
// writes them; split along K, every block writes its gate and up sums as partials (rows n and
// F + n of the [splitK][m][2F] workspace) and the column's last block to arrive sums them in
// split order, as the plain kernel's reducer does, and forms the activation.
template <int MT, class Finish, class RowFactor>
__device__ __forceinline__ void siluEpilogue(const DecodeParams& p, const float (&red)[8][16][MT * 8 + 1], int split,
                                             const Finish& finish, const RowFactor& rowFactor) {
  const int tb = p.tb, kwCount = 8 / tb, half = tb >> 1;
  const int outRows = half * 16, oBase = blockIdx.x * outRows, F = p.tilesF * 16;
  for (int e = threadIdx.x; e < outRows * p.m; e += kDecodeThreads) {
    const int mm = e / outRows, j = e - mm * outRows;
    const int n = oBase + j;
    if (n >= F) continue;
    const int twG = j >> 4, r = j & 15;
    float g = 0.f, u = 0.f;
    for (int kwi = 0; kwi < kwCount; ++kwi) {
      g += red[kwi * tb + twG][r][mm];
      u += red[kwi * tb + twG + half][r][mm];
    }
    if (p.splitK == 1) {
      const float rf = rowFactor(mm);
      p.y[static_cast<size_t>(mm) * F + n] =
          __float2bfloat16_rn(siluMulRef(__bfloat162float(finish(g, n, rf)), __bfloat162float(finish(u, F + n, rf))));
    } else {
      float* part = p.partial + (static_cast<size_t>(split) * p.m + mm) * p.n;
      part[n] = g;
      part[F + n] = u;
    }
  }
  if (p.splitK == 1 || !lastToArrive(p)) return;
  const size_t stride = static_cast<size_t>(p.m) * p.n;
  for (int e = threadIdx.x; e < outRows * p.m; e += kDecodeThreads) {
    const int mm = e / outRows, n = oBase + e - mm * outRows;
    if (n >= F) continue;
    const float* part = p.partial + static_cast<size_t>(mm) * p.n + n;
    float g = 0.f, u = 0.f;  // in split order, eight splits' loads in flight at a time
    for (int s0 = 0; s0 < p.splitK; s0 += 8) {
      float tg[8], tu[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        tg[i] = s0 + i < p.splitK ? __ldcg(part + (s0 + i) * stride) : 0.f;
        tu[i] = s0 + i < p.splitK ? __ldcg(part + (s0 + i) * stride + F) : 0.f;
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) g += tg[i], u += tu[i];
    }
    const float rf = rowFactor(mm);
    p.y[static_cast<size_t>(mm) * F + n] =
        __float2bfloat16_rn(siluMulRef(__bfloat162float(finish(g, n, rf)), __bfloat162float(finish(u, F + n, rf))));
  }
  if (threadIdx.x == 0) p.counters[blockIdx.x] = 0;
}

// SILU (gemmW8A16SiluMul; TPW 1, tb even): the weight is a stacked [gate | up] of 2F rows and
// y [m, F] receives silu(gate) · up, the MLP's activation, instead of the projection. Block b's
// first tb / 2 warp tiles are gate tiles b·tb/2 + j and the rest the up tiles F/16 apart, so the
// block holds both halves of its outputs and the activation is formed in its epilogue (or by
// the split-K reducer): the separate siluMulHalves kernel, and its boundary in the step's
// kernel chain, are gone. Each tile's sums are those of the plain kernel (same units, same
// orders), and the activation rounds gate and up to bf16 first, as the composed ops do.
//
// The plain per-channel m <= 8 depth-2 variant runs three blocks per SM with the 80 registers
// ptxas gives it unbounded (what the stacked gate/up streams best with, w8a16ChooseDecode); the
// SILU form of it is held to them too (unbounded it took 94, two blocks per SM). Not the
// per-group one: held to 80 it streamed the 40B gate/up 1.2x slower at m = 8 (lab silu-sweep,
// 108.6 against 90.6 us), while the plain per-group variant takes 89 registers, two blocks.
//
// RMS (gemmW8A16Rms, m <= 8, one tile per warp): x is bf16(r ⊙ g) for residual rows r, written
// so by the residual form before it with the rows' sums of squares in p.rmsSq, and the outputs
// are scaled by each row's 1/rms(r): the RMSNorm's projection with no norm kernel before it. The
// weight loop is the plain kernel's.
template <int MT, bool GROUPED, int DEPTH, int TPW = 1, bool SILU = false, bool RMS = false>
__global__ void __launch_bounds__(kDecodeThreads,
                                  SILU && !GROUPED && MT == 1 && DEPTH == 2 ? 3 : decodeMinBlocks<MT, DEPTH, TPW>())
    decodeKernel(const DecodeParams p) {
  static_assert(!SILU || TPW == 1, "the SiLU epilogue pairs one gate and one up tile per warp pair");
  static_assert(!RMS || (MT == 1 && TPW == 1), "the RMS form is built for m <= 8, one tile per warp");
  IVL_TRACE_SCOPE;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int gi = lane >> 2, ti = lane & 3;
  const int tb = p.tb, kwCount = 8 / tb;
  const int tw = warp % tb, kw = warp / tb;
  int tile = (blockIdx.x * tb + tw) * TPW;  // the warp's first tile
  if constexpr (SILU) {  // past the last pair: tilesN, which streams nothing
    const int half = tb >> 1, j = blockIdx.x * half + tw % half;
    tile = j < p.tilesF ? j + (tw >= half ? p.tilesF : 0) : p.tilesN;
  }
  const int split = blockIdx.y;
  const int g0 = static_cast<int>(static_cast<long long>(p.groups) * split / p.splitK);
  const int g1 = static_cast<int>(static_cast<long long>(p.groups) * (split + 1) / p.splitK);
  // This warp's units: groups g0 + kw + i * kwCount, i < nMine.
  const int nMine = (tile < p.tilesN && g0 + kw < g1) ? (g1 - g0 - kw + kwCount - 1) / kwCount : 0;

  // A second tile past the last one reads the last one again (its rows are >= N: never stored).
  const uint4* wTile[TPW];
  const float* sTile[TPW];
#pragma unroll
  for (int tt = 0; tt < TPW; ++tt) {
    const int t = tt == 0 ? tile : min(tile + tt, p.tilesN - 1);
    wTile[tt] = p.qw + static_cast<size_t>(t) * p.groups * 128 + lane;
    sTile[tt] = GROUPED ? p.scales + static_cast<size_t>(t) * p.groups * 16 + gi : nullptr;
  }
  const bf16* xRow[MT];
  bool rowOk[MT];
  activationRows<MT>(p, gi, ti, xRow, rowOk);

  float acc[TPW][MT][4];
#pragma unroll
  for (int tt = 0; tt < TPW; ++tt)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) acc[tt][mt][0] = acc[tt][mt][1] = acc[tt][mt][2] = acc[tt][mt][3] = 0.f;

  uint4 wb[DEPTH][TPW][4];
  float sb[DEPTH][TPW][2];
  auto load = [&](uint4 (&w)[TPW][4], float (&s)[TPW][2], int i, auto pinned) {
    const int g = g0 + kw + i * kwCount;
#pragma unroll
    for (int tt = 0; tt < TPW; ++tt) {
      const uint4* src = wTile[tt] + static_cast<size_t>(g) * 128;
#pragma unroll
      for (int j = 0; j < 4; ++j) w[tt][j] = ldgStream<decltype(pinned)::value>(src + j * 32);
      // Unit i + l2Ahead into L2 now: more bytes in flight than the register ring holds.
      if (p.l2Ahead > 0 && i + p.l2Ahead < nMine) {
        const uint4* ahead = src + static_cast<size_t>(p.l2Ahead) * kwCount * 128;
#pragma unroll
        for (int j = 0; j < 4; ++j) l2Prefetch(ahead + j * 32);
      }
      if constexpr (GROUPED) {
        s[tt][0] = __ldg(sTile[tt] + static_cast<size_t>(g) * 16);
        s[tt][1] = __ldg(sTile[tt] + static_cast<size_t>(g) * 16 + 8);
      }
    }
  };
  // Each unit accumulates into its own zeroed temporary, added (per-group: scaled) into acc at
  // the end: the MMA chains of consecutive units are then independent. Measured 2026-11-28:
  // accumulating straight into acc (one MMA chain across all units) made per-channel up to 1.5x
  // slower than per-group at the same config.
  // Per-channel with two tiles per warp at MT = 2 has four independent accumulator chains
  // already, so it adds into acc directly: the temporary's 16 registers are what kept it above
  // the 128 of two blocks per SM. (MT = 3, 4 got more registers, not fewer, that way.)
  constexpr bool kDirect = !GROUPED && TPW == 2 && MT == 2;
  auto compute = [&](const uint4 (&w)[TPW][4], const float (&s)[TPW][2], int i) {
    const int g = g0 + kw + i * kwCount;
    float tmp[TPW][MT][4];
    float(&t)[TPW][MT][4] = kDirect ? acc : tmp;
    if constexpr (!kDirect) {
#pragma unroll
      for (int tt = 0; tt < TPW; ++tt)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) t[tt][mt][0] = t[tt][mt][1] = t[tt][mt][2] = t[tt][mt][3] = 0.f;
    }
    unitMma<MT, TPW>(t, w, g, p.k, ti, xRow, rowOk);
    if constexpr (GROUPED || !kDirect) foldUnit<MT, TPW, GROUPED>(acc, t, s);
  };

  // Programmatic dependent launch (pdl.h): the next kernel on the stream may be scheduled once
  // every block got here, and this block's first DEPTH weight units (weights and scales: never
  // written by the step's kernels) stream in before the wait for the previous kernel. Nothing
  // that kernel may write -- x, and the y / partial / counter writes below -- is touched before
  // pdlWait(). Split-K state is shared by every call on the stream (one workspace): the wait
  // returns only after the previous call has completed, its last blocks having re-armed their
  // counters and finished reading the partials; and the next call, which may start during this
  // one, does its own wait before its first counter or partial access, i.e. after this grid
  // has completed. So calls never see each other's split-K state in flight.
  // (Triggering after the weight loop instead was slower at both ring depths, lab README.)
  pdlLaunchDependents();
#ifdef IVL_KERNEL_TRACE
  // Trace build: only the first prologueUnits before the wait, the rest after it (whether the
  // prologue's loads slow the small kernel they overlap, w8a16SetPrologueUnits).
  const int early = p.prologueUnits > 0 ? min(p.prologueUnits, DEPTH) : DEPTH;
#pragma unroll
  for (int d = 0; d < DEPTH; ++d)
    if (d < nMine && d < early) load(wb[d], sb[d], d, std::true_type{});
  pdlWait();
  IVL_TRACE_GO;
#pragma unroll
  for (int d = 0; d < DEPTH; ++d)
    if (d < nMine && d >= early) load(wb[d], sb[d], d, std::true_type{});  // pinned: after the wait
#else
#pragma unroll
  for (int d = 0; d < DEPTH; ++d)
    if (d < nMine) load(wb[d], sb[d], d, std::true_type{});
  pdlWait();
#endif
  // RMS: this thread's share of the residual form's per-block sums of squares (one value at
  // most: mp · rmsSlots <= 256, rmsRuns), loaded now and added only after the loop, so no L2
  // round trip stands before the first unit (the rows' own squares, read before the loop or
  // staged in shared memory, cost 3-8 us a layer in the lab chain, session 12).
  const int mp = p.m <= 1 ? 1 : p.m <= 2 ? 2 : p.m <= 4 ? 4 : 8;  // m rounded up to a power of two
  float sqMine = 0.f;
  if constexpr (RMS) {
    const int row = threadIdx.x & (mp - 1), slot = threadIdx.x / mp;
    if (row < p.m && slot < p.rmsSlots) sqMine = __ldcg(p.rmsSq + static_cast<size_t>(slot) * p.m + row);
  }
  for (int i = 0; i < nMine; i += DEPTH) {
#pragma unroll
    for (int d = 0; d < DEPTH; ++d) {
      if (i + d < nMine) {
        compute(wb[d], sb[d], i + d);
        if (i + d + DEPTH < nMine) load(wb[d], sb[d], i + d + DEPTH, std::false_type{});
      }
    }
  }

  IVL_TRACE_MARK(0);
  // Block reduction over the K lanes. Accumulator (swapped product, C = W_tile · x^T):
  // acc[mt][0..1] = (row gi, activations mt*8 + 2ti, +1), acc[mt][2..3] = row gi + 8.
  __shared__ float red[8][16 * TPW][MT * 8 + 1];
  accToRed<MT, TPW>(red, acc, warp, gi, ti);
  // RMS: the slots' sums per row, per warp (thread t holds row t % mp, so a warp's lanes of one
  // row reduce by xor shuffles), added over the warps in rowFactor: the same order in every block.
  __shared__ float sqRed[RMS ? 8 : 1][MT * 8];
  if constexpr (RMS) {
    float v = sqMine;
    for (int off = 16; off >= mp; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
    if (lane < mp) sqRed[warp][lane] = v;
  }
  __syncthreads();

  // RMS: 1/rms of row mm, from the warps' sums in warp order (the same value in every block).
  auto rowFactor = [&](int mm) {
    if constexpr (!RMS) {
      return 1.f;
    } else {
      float v = 0.f;
#pragma unroll
      for (int w = 0; w < 8; ++w) v += sqRed[w][mm];
      return rsqrtf(v / static_cast<float>(p.k) + p.rmsEps);
    }
  };

  auto finish = [&](float v, int n, float rf) {
    if constexpr (!GROUPED) v *= __ldg(p.scales + n);
    if constexpr (RMS) v *= rf;
    if (p.bias != nullptr) v += __bfloat162float(p.bias[n]);
    return __float2bfloat16_rn(v);
  };
  if constexpr (SILU) {
    siluEpilogue<MT>(p, red, split, finish, rowFactor);
    return;
  }
  // Residual: y holds the rows the product is added to, as an elementwise add after it would;
  // with nextX, the next RMS form's input bf16(y ⊙ nextW) is written too, and y² kept per output
  // for the block's sums (nextSquares).
  const int rowsB = tb * 16 * TPW;
  const int nBase = blockIdx.x * rowsB;
  // [row][block output] (nextX: m <= 8, decodeCall checks; the MT = 1 variants run those rows)
  __shared__ float ySq[MT == 1 ? 8 : 1][MT == 1 ? 16 * TPW * 8 : 1];
  auto store = [&](int mm, int n, bf16 v) {
    const size_t at = static_cast<size_t>(mm) * p.n + n;
    if (p.residual) {
      v = __float2bfloat16_rn(__bfloat162float(p.y[at]) + __bfloat162float(v));
      if constexpr (MT == 1) {
        if (p.nextX != nullptr) {
          const float f = __bfloat162float(v);
          p.nextX[at] = __float2bfloat16_rn(f * __ldg(p.nextW + n));
          ySq[mm][n - nBase] = f * f;
        }
      }
    }
    p.y[at] = v;
  };
  // The sums of y² for the next RMS form, one per 32 outputs and row (rmsSlotSum: the order
  // w8a16RmsPrep repeats, whatever this grid's tiling).
  auto nextSquares = [&] {
    if (MT != 1 || p.nextX == nullptr) return;
    __syncthreads();
    const int chunks = rowsB / 32, pairs = chunks * p.m;
    for (int q = warp; q < pairs; q += kDecodeThreads / 32) {
      const int mm = q / chunks, c = q - mm * chunks, j = c * 32 + lane;
      const float v = rmsSlotSum(nBase + j < p.n ? ySq[MT == 1 ? mm : 0][MT == 1 ? j : 0] : 0.f);
      if (lane == 0 && nBase + c * 32 < p.n) p.nextSq[static_cast<size_t>(nBase / 32 + c) * p.m + mm] = v;
    }
  };
  for (int e = threadIdx.x; e < rowsB * p.m; e += kDecodeThreads) {
    const int mm = e / rowsB, nl = e - mm * rowsB;
    const int n = nBase + nl;
    if (n >= p.n) continue;
    const int twi = (nl >> 4) / TPW, r = ((nl >> 4) % TPW) * 16 + (nl & 15);  // warp tile, its row
    float v = 0.f;
    for (int kwi = 0; kwi < kwCount; ++kwi) v += red[kwi * tb + twi][r][mm];
    if (p.splitK == 1)
      store(mm, n, finish(v, n, rowFactor(mm)));
    else
      p.partial[(static_cast<size_t>(split) * p.m + mm) * p.n + n] = v;
  }
  if (p.splitK == 1) return nextSquares();

  // Split-K: the last block of this column of blocks to arrive sums the partials in split
  // order (deterministic) and writes y; it then re-arms the counter for the next call.
  if (!lastToArrive(p)) return;
  for (int e = threadIdx.x; e < rowsB * p.m; e += kDecodeThreads) {
    const int mm = e / rowsB, nl = e - mm * rowsB;
    const int n = nBase + nl;
    if (n >= p.n) continue;
    // Eight splits' loads in flight at a time (a plain loop issued them about one by one: this
    // block's latency is the grid's tail), summed in split order all the same.
    const float* part = p.partial + static_cast<size_t>(mm) * p.n + n;
    const size_t stride = static_cast<size_t>(p.m) * p.n;
    float v = 0.f;
    for (int s0 = 0; s0 < p.splitK; s0 += 8) {
      float t[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) t[j] = s0 + j < p.splitK ? __ldcg(part + (s0 + j) * stride) : 0.f;
#pragma unroll
      for (int j = 0; j < 8; ++j) v += t[j];
    }
    store(mm, n, finish(v, n, rowFactor(mm)));
  }
  if (threadIdx.x == 0) p.counters[blockIdx.x] = 0;
  nextSquares();
}

// ---- prefill: tiled tensor-core GEMM -------------------------------------------------------

struct PrefillParams {
  const uint4* qw;       // packed weights
  const float* scales;   // PerChannel [Np] or PerGroup128 [Np/16][G][16]
  const bf16* x;         // [m, k]
  const bf16* bias;      // [n] or null
  bf16* y;               // [m, n]
  int m, n, k, groups, tilesN;
  int splitK;            // blocks along K (gridDim.z); > 1: fp32 partials through the workspace
  float* partial;        // [splitK][m][n] (splitK > 1)
  int* counters;         // one per output block tile, zero between calls (splitK > 1)
};

// BM, BN: block tile (rows of x, rows of W); the k tile is one 128-column group.
// WM, WN: warps along m and n; the warp tile is (BM / WM) x (BN / WN), a multiple of 16 x 16.
// STAGES: cp.async pipeline depth (shared-memory buffers of x, W and group scales).
// MINB:   blocks per SM asked of the register allocator (__launch_bounds__).
// GROUPED: per-group scales: each k tile accumulates into a temporary that is scaled into acc.
// Split along K (p.splitK = gridDim.z > 1, for skinny m where the output tiles alone leave SMs
// idle): block z runs groups [G z / S, G (z + 1) / S) and stores its fp32 sums; the block tile's
// last block to arrive adds the S partials in split order (deterministic) and finishes as unsplit.
template <int BM, int BN, int WM, int WN, int STAGES, int MINB, bool GROUPED>
struct Prefill {
  static constexpr int kThreads = WM * WN * 32;
  static constexpr int kWarpM = BM / WM, kWarpN = BN / WN;
  static constexpr int kMI = kWarpM / 16;  // m16 blocks per warp
  static constexpr int kNT = kWarpN / 16;  // 16-row weight tiles per warp (2 n8 blocks each)
  static constexpr int kXChunks = BM * 16;           // 16-byte chunks of an x stage (BM x 128 bf16)
  static constexpr int kWChunks = BN * 8;            // of a W stage (BN/16 units of 2 KB)
  static constexpr int kSChunks = GROUPED ? BN / 4 : 0;  // of a scale stage (BN floats)
  static constexpr int kStageChunks = kXChunks + kWChunks + kSChunks;
  static constexpr size_t kSmemBytes = static_cast<size_t>(STAGES) * kStageChunks * 16;
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "warp tile must be a multiple of 16x16");
  static_assert(kXChunks % kThreads == 0 && kWChunks % kThreads == 0, "chunks must divide threads");
};

template <int BM, int BN, int WM, int WN, int STAGES, int MINB, bool GROUPED>
__global__ void __launch_bounds__(WM* WN * 32, MINB) prefillKernel(const PrefillParams p) {
  using P = Prefill<BM, BN, WM, WN, STAGES, MINB, GROUPED>;
  extern __shared__ uint4 smem[];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int gi = lane >> 2, ti = lane & 3;
  const int wm = warp / WN, wn = warp % WN;
  const int mBase = blockIdx.x * BM;
  const int tileBase = blockIdx.y * (BN / 16);
  const int split = blockIdx.z;
  const int g0 = static_cast<int>(static_cast<long long>(p.groups) * split / p.splitK);
  const int nG = static_cast<int>(static_cast<long long>(p.groups) * (split + 1) / p.splitK) - g0;

  // Stage s: x [BM rows][16 chunks] (chunk c of row r stored at c ^ 4*(r & 1): the two rows a
  // quarter-warp reads land in different bank halves), W [BN/16 units][128 chunks], scales.
  auto stageX = [&](int s) { return smem + static_cast<size_t>(s) * P::kStageChunks; };
  auto stageW = [&](int s) { return stageX(s) + P::kXChunks; };
  auto stageS = [&](int s) { return reinterpret_cast<float*>(stageW(s) + P::kWChunks); };

  auto loadStage = [&](int s, int kt) {
    uint4* sx = stageX(s);
#pragma unroll
    for (int i = 0; i < P::kXChunks / P::kThreads; ++i) {
      const int c = tid + i * P::kThreads;
      const int r = c >> 4, ch = c & 15;
      const int gr = mBase + r, gk = kt * kW8A16Group + ch * 8;
      const bool ok = gr < p.m && gk < p.k;
      const bf16* src = ok ? p.x + static_cast<size_t>(gr) * p.k + gk : p.x;
      cpAsync16(sx + r * 16 + (ch ^ ((r & 1) << 2)), src, ok);
    }
    uint4* sw = stageW(s);
#pragma unroll
    for (int i = 0; i < P::kWChunks / P::kThreads; ++i) {
      const int c = tid + i * P::kThreads;
      const int tl = c >> 7, within = c & 127;
      const int tile = tileBase + tl;
      const bool ok = tile < p.tilesN;
      const uint4* src = ok ? p.qw + (static_cast<size_t>(tile) * p.groups + kt) * 128 + within : p.qw;
      cpAsync16(sw + c, src, ok);
    }
    if constexpr (GROUPED) {
      if (tid < P::kSChunks) {
        const int tl = tid >> 2, q = tid & 3;
        const int tile = tileBase + tl;
        const bool ok = tile < p.tilesN;
        const float* src = ok ? p.scales + (static_cast<size_t>(tile) * p.groups + kt) * 16 + q * 4 : p.scales;
        cpAsync16(reinterpret_cast<uint4*>(stageS(s)) + tid, src, ok);
      }
    }
  };

  float acc[P::kMI][P::kNT * 2][4];
#pragma unroll
  for (int mi = 0; mi < P::kMI; ++mi)
#pragma unroll
    for (int nb = 0; nb < P::kNT * 2; ++nb) acc[mi][nb][0] = acc[mi][nb][1] = acc[mi][nb][2] = acc[mi][nb][3] = 0.f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < nG) loadStage(s, g0 + s);
    cpAsyncCommit();
  }

  for (int kt = 0; kt < nG; ++kt) {
    cpAsyncWait<STAGES - 2>();
    __syncthreads();  // stage kt landed for all threads; stage kt-1 is free to overwrite
    {
      const int next = kt + STAGES - 1;
      if (next < nG) loadStage(next % STAGES, g0 + next);
      cpAsyncCommit();
    }
    const int s = kt % STAGES;
    const uint4* sx = stageX(s);
    const uint4* sw = stageW(s);

    float t[GROUPED ? P::kMI : 1][GROUPED ? P::kNT * 2 : 1][4];
    if constexpr (GROUPED) {
#pragma unroll
      for (int mi = 0; mi < P::kMI; ++mi)
#pragma unroll
        for (int nb = 0; nb < P::kNT * 2; ++nb) t[mi][nb][0] = t[mi][nb][1] = t[mi][nb][2] = t[mi][nb][3] = 0.f;
    }

#pragma unroll
    for (int j = 0; j < 4; ++j) {
      // A fragments (x) of the two k-steps: lane's 8 columns of rows gi and gi + 8.
      uint32_t a[P::kMI][2][4];
#pragma unroll
      for (int mi = 0; mi < P::kMI; ++mi) {
        const int r = wm * P::kWarpM + mi * 16 + gi;  // r and r + 8 have the same parity
        const int ch = (j * 4 + ti) ^ ((r & 1) << 2);
        const uint4 lo = lds128(sx + r * 16 + ch);
        const uint4 hi = lds128(sx + (r + 8) * 16 + ch);
        a[mi][0][0] = lo.x; a[mi][0][1] = hi.x; a[mi][0][2] = lo.y; a[mi][0][3] = hi.y;
        a[mi][1][0] = lo.z; a[mi][1][1] = hi.z; a[mi][1][2] = lo.w; a[mi][1][3] = hi.w;
      }
      // B fragments (W): per tile, n8 block h (rows gi + 8h), k-step ks: {word 2ks, word 2ks+1}.
      uint32_t b[P::kNT][2][2][2];  // [tile][h][ks][reg]
#pragma unroll
      for (int nt = 0; nt < P::kNT; ++nt) {
        const uint4 wv = lds128(sw + ((wn * P::kNT + nt) * 4 + j) * 32 + lane);
        dequant4(wv.x, b[nt][0][0][0], b[nt][1][0][0]);
        dequant4(wv.y, b[nt][0][0][1], b[nt][1][0][1]);
        dequant4(wv.z, b[nt][0][1][0], b[nt][1][1][0]);
        dequant4(wv.w, b[nt][0][1][1], b[nt][1][1][1]);
      }
#pragma unroll
      for (int ks = 0; ks < 2; ++ks)
#pragma unroll
        for (int mi = 0; mi < P::kMI; ++mi)
#pragma unroll
          for (int nt = 0; nt < P::kNT; ++nt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              if constexpr (GROUPED)
                mma16816(t[mi][nt * 2 + h], a[mi][ks], b[nt][h][ks][0], b[nt][h][ks][1]);
              else
                mma16816(acc[mi][nt * 2 + h], a[mi][ks], b[nt][h][ks][0], b[nt][h][ks][1]);
            }
    }

    if constexpr (GROUPED) {
      const float* ss = stageS(s);
#pragma unroll
      for (int nt = 0; nt < P::kNT; ++nt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int c = (wn * P::kNT + nt) * 16 + 8 * h + 2 * ti;  // column within the block tile
          const float s0 = ss[c], s1 = ss[c + 1];
#pragma unroll
          for (int mi = 0; mi < P::kMI; ++mi) {
            float(&d)[4] = acc[mi][nt * 2 + h];
            const float(&v)[4] = t[mi][nt * 2 + h];
            d[0] = fmaf(v[0], s0, d[0]);
            d[1] = fmaf(v[1], s1, d[1]);
            d[2] = fmaf(v[2], s0, d[2]);
            d[3] = fmaf(v[3], s1, d[3]);
          }
        }
    }
  }
  cpAsyncWait<0>();

  // Epilogue: acc[mi][nb] = rows (gi, gi + 8) x columns (2ti, 2ti + 1) of n8 block nb.
  const bool pairStore = (p.n % 2) == 0;
  if (p.splitK > 1) {
    // This split's sums (unscaled per channel: the scale is linear), then, in the block tile's
    // last block, every split's sums in split order in place of acc. Columns are even, so with
    // an even n a pair is 8-byte aligned.
    auto forEach = [&](auto&& f) {
#pragma unroll
      for (int nt = 0; nt < P::kNT; ++nt)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int mi = 0; mi < P::kMI; ++mi)
#pragma unroll
            for (int half = 0; half < 2; ++half) {
              const int col = (tileBase + wn * P::kNT + nt) * 16 + 8 * h + 2 * ti;
              const int row = mBase + wm * P::kWarpM + mi * 16 + gi + 8 * half;
              if (col < p.n && row < p.m) f(acc[mi][nt * 2 + h], half, static_cast<size_t>(row) * p.n + col, col + 1 < p.n);
            }
    };
    const size_t splitStride = static_cast<size_t>(p.m) * p.n;
    forEach([&](float(&a)[4], int half, size_t at, bool has1) {
      float* dst = p.partial + split * splitStride + at;
      if (pairStore && has1) {
        __stcg(reinterpret_cast<float2*>(dst), make_float2(a[2 * half], a[2 * half + 1]));
      } else {
        __stcg(dst, a[2 * half]);
        if (has1) __stcg(dst + 1, a[2 * half + 1]);
      }
    });
    int* counter = p.counters + blockIdx.y * gridDim.x + blockIdx.x;
    if (!lastToArrive(counter, p.splitK)) return;
    forEach([&](float(&a)[4], int half, size_t at, bool has1) {
      const float* src = p.partial + at;
      float v0 = 0.f, v1 = 0.f;
      for (int s0 = 0; s0 < p.splitK; s0 += 4) {  // four splits' loads in flight, summed in order
        float t0[4], t1[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const bool ok = s0 + j < p.splitK;
          t0[j] = ok ? __ldcg(src + (s0 + j) * splitStride) : 0.f;
          t1[j] = ok && has1 ? __ldcg(src + (s0 + j) * splitStride + 1) : 0.f;
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) v0 += t0[j], v1 += t1[j];
      }
      a[2 * half] = v0;
      a[2 * half + 1] = v1;
    });
    if (threadIdx.x == 0) *counter = 0;
  }
#pragma unroll
  for (int nt = 0; nt < P::kNT; ++nt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int col = (tileBase + wn * P::kNT + nt) * 16 + 8 * h + 2 * ti;
      if (col >= p.n) continue;
      const bool has1 = col + 1 < p.n;
      float sc0 = 1.f, sc1 = 1.f, b0 = 0.f, b1 = 0.f;
      if constexpr (!GROUPED) {
        sc0 = __ldg(p.scales + col);
        sc1 = __ldg(p.scales + col + 1);  // scales are padded to Np
      }
      if (p.bias != nullptr) {
        b0 = __bfloat162float(p.bias[col]);
        if (has1) b1 = __bfloat162float(p.bias[col + 1]);
      }
#pragma unroll
      for (int mi = 0; mi < P::kMI; ++mi)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int row = mBase + wm * P::kWarpM + mi * 16 + gi + 8 * half;
          if (row >= p.m) continue;
          const float v0 = fmaf(acc[mi][nt * 2 + h][2 * half], sc0, b0);
          const float v1 = fmaf(acc[mi][nt * 2 + h][2 * half + 1], sc1, b1);
          bf16* dst = p.y + static_cast<size_t>(row) * p.n + col;
          if (pairStore && has1) {
            *reinterpret_cast<__nv_bfloat162*>(dst) = __floats2bfloat162_rn(v0, v1);
          } else {
            dst[0] = __float2bfloat16_rn(v0);
            if (has1) dst[1] = __float2bfloat16_rn(v1);
          }
        }
    }
}

// ---- host side ----------------------------------------------------------------------------

int currentDevice() {
  int dev = 0;
  IVL_CUDA_CHECK(cudaGetDevice(&dev));
  return dev;
}

int smCount() {
  static std::atomic<int> cache[64];
  const int dev = currentDevice();
  if (dev < 64) {
    const int c = cache[dev].load(std::memory_order_relaxed);
    if (c > 0) return c;
  }
  int count = 0;
  IVL_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev));
  if (dev < 64) cache[dev].store(count, std::memory_order_relaxed);
  return count;
}

// Per kernel instantiation: the dynamic shared-memory limit is raised once per device.
template <class Kernel>
void ensureSmem(Kernel kernel, size_t bytes, std::atomic<unsigned long long>& doneMask) {
  const int dev = currentDevice();
  const unsigned long long bit = dev < 64 ? (1ull << dev) : 0ull;
  if (bit != 0 && (doneMask.load(std::memory_order_acquire) & bit) != 0) return;
  IVL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  if (bit != 0) doneMask.fetch_or(bit, std::memory_order_acq_rel);
}

// With PDL (pdl.h) when the device and the environment allow: decodeKernel waits before it
// touches anything a previous kernel writes.
template <int MT, bool GROUPED, int DEPTH, int TPW, bool SILU = false, bool RMS = false>
void launchDecodeT(const DecodeParams& p, dim3 grid, cudaStream_t stream) {
  launchMaybePdl(pdlEnabled(), decodeKernel<MT, GROUPED, DEPTH, TPW, SILU, RMS>, grid, dim3(kDecodeThreads), 0,
                 stream, p);
}

// The RMS form (p.rmsSq set; m <= 8, one tile per warp: decodeCall checks).
template <bool GROUPED>
void launchDecodeRms(const DecodeParams& p, dim3 grid, int depth, bool silu, cudaStream_t stream) {
  if (silu && depth <= 2)
    launchDecodeT<1, GROUPED, 2, 1, true, true>(p, grid, stream);
  else if (silu)
    launchDecodeT<1, GROUPED, 4, 1, true, true>(p, grid, stream);
  else if (depth <= 2)
    launchDecodeT<1, GROUPED, 2, 1, false, true>(p, grid, stream);
  else
    launchDecodeT<1, GROUPED, 4, 1, false, true>(p, grid, stream);
}

// Two tiles per warp only with depth 2: its register ring is then as large as one tile's at
// depth 4 (the kernel's 2 blocks of 256 threads per SM leave 128 registers a thread).
template <int MT, bool GROUPED>
void launchDecodeDepth(const DecodeParams& p, dim3 grid, int depth, int tpw, bool silu, cudaStream_t stream) {
  if (silu && depth <= 2)
    launchDecodeT<MT, GROUPED, 2, 1, true>(p, grid, stream);
  else if (silu)
    launchDecodeT<MT, GROUPED, 4, 1, true>(p, grid, stream);
  else if (tpw == 2)
    launchDecodeT<MT, GROUPED, 2, 2>(p, grid, stream);
  else if (depth <= 2)
    launchDecodeT<MT, GROUPED, 2, 1>(p, grid, stream);
  else
    launchDecodeT<MT, GROUPED, 4, 1>(p, grid, stream);
}

template <bool GROUPED>
void launchDecodeMT(const DecodeParams& p, dim3 grid, int depth, int tpw, bool silu, cudaStream_t stream) {
  if (p.rmsSq != nullptr) return launchDecodeRms<GROUPED>(p, grid, depth, silu, stream);
  switch ((p.m + 7) / 8) {
    case 1: launchDecodeDepth<1, GROUPED>(p, grid, depth, tpw, silu, stream); break;
    case 2: launchDecodeDepth<2, GROUPED>(p, grid, depth, tpw, silu, stream); break;
    case 3: launchDecodeDepth<3, GROUPED>(p, grid, depth, tpw, silu, stream); break;
    default: launchDecodeDepth<4, GROUPED>(p, grid, depth, tpw, silu, stream); break;
  }
}

template <int BM, int BN, int WM, int WN, int STAGES, int MINB, bool GROUPED>
void launchPrefillT(const PrefillParams& p, cudaStream_t stream) {
  using P = Prefill<BM, BN, WM, WN, STAGES, MINB, GROUPED>;
  auto kernel = prefillKernel<BM, BN, WM, WN, STAGES, MINB, GROUPED>;
  static std::atomic<unsigned long long> done{0};
  ensureSmem(kernel, P::kSmemBytes, done);
  const dim3 grid((p.m + BM - 1) / BM, (p.tilesN * 16 + BN - 1) / BN, p.splitK);
  kernel<<<grid, P::kThreads, P::kSmemBytes, stream>>>(p);
}

template <bool GROUPED>
void launchPrefillTile(const PrefillParams& p, W8A16PrefillTile tile, cudaStream_t stream) {
  switch (tile) {
    case W8A16PrefillTile::M128N128S3: launchPrefillT<128, 128, 2, 4, 3, 1, GROUPED>(p, stream); break;
    case W8A16PrefillTile::M128N128S4: launchPrefillT<128, 128, 2, 4, 4, 1, GROUPED>(p, stream); break;
    case W8A16PrefillTile::M64N128S4: launchPrefillT<64, 128, 2, 4, 4, 1, GROUPED>(p, stream); break;
    case W8A16PrefillTile::M64N64S4: launchPrefillT<64, 64, 2, 2, 4, 2, GROUPED>(p, stream); break;
    case W8A16PrefillTile::M32N128S4: launchPrefillT<32, 128, 1, 8, 4, 2, GROUPED>(p, stream); break;
    case W8A16PrefillTile::M64N128W8S3: launchPrefillT<64, 128, 1, 8, 3, 2, GROUPED>(p, stream); break;
  }
}

void checkCall(const W8A16Weight& w, const bf16* x, int m, const bf16* y, const char* who) {
  const std::string at = std::string(who) + ": ";
  ivl::require(w.n > 0 && w.k > 0 && w.k % 8 == 0, ivl::ErrorCode::InvalidArg,
               at + "weight shape must be N > 0, K > 0 with K a multiple of 8, got N=" + std::to_string(w.n) +
                   " K=" + std::to_string(w.k));
  ivl::require(w.qweight != nullptr && reinterpret_cast<uintptr_t>(w.qweight) % 16 == 0 && w.scales != nullptr &&
                   reinterpret_cast<uintptr_t>(w.scales) % 16 == 0,
               ivl::ErrorCode::InvalidArg, at + "weight buffers must be set and 16-byte aligned");
  ivl::require(w.scheme == Int8Scheme::PerChannel || w.scheme == Int8Scheme::PerGroup128,
               ivl::ErrorCode::InvalidArg, at + "unknown Int8Scheme");
  ivl::require(m >= 0, ivl::ErrorCode::InvalidArg, at + "m must be >= 0, got " + std::to_string(m));
  if (m == 0) return;
  ivl::require(x != nullptr && reinterpret_cast<uintptr_t>(x) % 16 == 0, ivl::ErrorCode::InvalidArg,
               at + "x must be a non-null device pointer aligned to 16 bytes");
  ivl::require(y != nullptr && reinterpret_cast<uintptr_t>(y) % 4 == 0, ivl::ErrorCode::InvalidArg,
               at + "y must be a non-null device pointer aligned to 4 bytes");
}

size_t alignUp(size_t v, size_t a) { return (v + a - 1) / a * a; }

// Workspace layout: [kMaxCounters] int arrival counters (the same region for every weight and
// configuration, so one zeroed workspace can serve all the linears of a model), then the fp32
// split-K partials [splitK][m][n]. A grid wider than kMaxCounters blocks runs without split-K.
constexpr int kMaxCounters = 8192;
constexpr size_t kCounterBytes = kMaxCounters * sizeof(int);
// The split tensor-core kernel's partials are held to this many bytes (w8a16WorkspaceBytes
// reserves them for every weight: a bound the backend can size its one workspace by, without
// running the chooser over every m).
constexpr size_t kPrefillPartialBytes = size_t(32) << 20;
// The split tensor-core kernel's range (skinny sweep, session 11): up to this many rows, on
// weights of at least kSplitMinBlocks blocks of 128 rows (narrower ones, the kv projections, run
// faster dequantized for cuBLAS).
constexpr int kSplitMaxM = 64;
constexpr long long kSplitMinBlocks = 16;
bool splitWide(const W8A16Weight& w) { return (static_cast<long long>(w.n) + 127) / 128 >= kSplitMinBlocks; }

struct PrefillShape {
  int bm, bn, perSm;  // block tile, resident blocks per SM (shared memory / registers)
};
PrefillShape prefillShape(W8A16PrefillTile t) {
  switch (t) {
    case W8A16PrefillTile::M128N128S3: return {128, 128, 1};
    case W8A16PrefillTile::M128N128S4: return {128, 128, 1};
    case W8A16PrefillTile::M64N128S4: return {64, 128, 1};
    case W8A16PrefillTile::M64N64S4: return {64, 64, 2};
    case W8A16PrefillTile::M32N128S4: return {32, 128, 2};
    case W8A16PrefillTile::M64N128W8S3: return {64, 128, 2};
  }
  throw ivl::Error(ivl::ErrorCode::InvalidArg, "W8A16: unknown prefill tile " + std::to_string(static_cast<int>(t)));
}
long long prefillBlockTiles(const W8A16Weight& w, int m, W8A16PrefillTile t) {
  const PrefillShape sh = prefillShape(t);
  return static_cast<long long>((m + sh.bm - 1) / sh.bm) * ((static_cast<long long>(w.n + 15) / 16 * 16 + sh.bn - 1) / sh.bn);
}

// DecodeParams::l2Ahead for every call (w8a16SetL2Ahead; 0: the lab measured every distance
// slower, README).
std::atomic<int> l2AheadUnits{0};
// w8a16SetDecodeLab: ring depth at m <= 8 (0: the launcher's).
std::atomic<int> labSmallDepth{0};
#ifdef IVL_KERNEL_TRACE
// w8a16SetPrologueUnits (trace build): ring units loaded before the PDL wait (0: all).
std::atomic<int> labPrologueUnits{0};
#endif

}  // namespace w8a16

using w8a16::bf16;

#ifdef IVL_KERNEL_TRACE
cudaError_t w8a16TraceArm(KernelTraceRecord* buf, unsigned* count, unsigned cap) {
  return kernel_trace::arm(buf, count, cap);
}
void w8a16SetPrologueUnits(int units) { w8a16::labPrologueUnits.store(std::max(0, units), std::memory_order_relaxed); }
#endif

void w8a16SetL2Ahead(int units) { w8a16::l2AheadUnits.store(std::max(0, units), std::memory_order_relaxed); }
void w8a16SetDecodeLab(int smallDepth) {
  w8a16::labSmallDepth.store(smallDepth == 2 || smallDepth == 4 ? smallDepth : 0, std::memory_order_relaxed);
}

size_t w8a16DecodeWorkspaceBytes(const W8A16Weight& w, int m, const W8A16DecodeConfig& cfg) {
  if (cfg.splitK <= 1) return 0;
  const int tilesN = (w.n + 15) / 16;
  const int perBlock = cfg.tilesPerBlock * cfg.tilesPerWarp;
  const int blocksN = (tilesN + perBlock - 1) / perBlock;
  if (blocksN > w8a16::kMaxCounters) return static_cast<size_t>(-1);  // cannot split this wide a grid
  return w8a16::kCounterBytes + static_cast<size_t>(cfg.splitK) * m * w.n * sizeof(float);
}

W8A16DecodeConfig w8a16ChooseDecode(const W8A16Weight& w, int m, int smCount, size_t workspaceBytes) {
  // From the sweeps of 2026-11-28 (README): 2 tiles per block (each tile's K interleaved over 4
  // warps, so a block reads 8 KB contiguous per step) beat 4 and 8 at every real shape; split K
  // only until the grid has about two blocks per SM (the kv projections: 8 splits); 4 units in
  // flight per warp for m <= 8, 2 above. (Per-channel at m = 9..16 used depth 4 until the kernel
  // was bounded to two blocks per SM: unbounded, ptxas gave the depth-2 variants 64-80 registers
  // and they streamed far slower, e.g. gate at m = 16 97.8 us; bounded, 104 registers, 59.5 us
  // against 75.5 at depth 4. Lab README, 2026-11-29 session 6.)
  //
  // Wave fill (shape sweep of 2026-11-29, results/w8a16-2026-11-29-h200-shape-sweep.txt): the
  // 2-tile grid of the fused qkv (9216 rows: 288 blocks on 264 resident slots, 2 per SM) runs
  // a second wave of 24 blocks; 8 tiles per block split 3 ways (216 blocks, one wave) took
  // 27.3-30.8 us against 31.3-34.3 at m = 1 and 8, both schemes. So at m <= 8, when the
  // 2-tile grid needs a second wave and fills under 75 % of its last one, the tile count whose
  // grid fills the slots best is used instead, if the workspace holds its full split (unsplit it
  // is far slower). Single-wave grids keep 2 tiles (o / down: 224 blocks; tb2 measured best).
  const int tilesN = (w.n + 15) / 16;
  const int groups = w8a16Groups(w.k);
  const int slots = 2 * smCount;  // 2 blocks of 256 threads per SM (the kernel's registers)
  auto splitFor = [&](int tb) {
    const int blocksN = (tilesN + tb - 1) / tb;
    return std::max(1, std::min(std::max(1, groups / 2), slots / blocksN));
  };
  auto fill = [&](int tb) {
    const long long blocks = static_cast<long long>((tilesN + tb - 1) / tb) * splitFor(tb);
    const long long waves = (blocks + slots - 1) / slots;
    return static_cast<double>(blocks) / static_cast<double>(waves * slots);
  };
  // c with the largest K split up to `want` whose workspace fits (unsplit needs none).
  auto fitSplit = [&](W8A16DecodeConfig c, int want) {
    for (c.splitK = std::max(1, want); c.splitK > 1; --c.splitK)
      if (w8a16DecodeWorkspaceBytes(w, m, c) <= workspaceBytes) break;
    return c;
  };
  auto withSplit = [&](int tb, int want) {
    W8A16DecodeConfig c;
    c.tilesPerBlock = tb;
    // m <= 8: depth 4 (two blocks per SM), except on grids of two or more waves at three blocks
    // per SM (the stacked gate/up of 8B-76B), where depth 2 runs three blocks per SM: 40B layer
    // chain with PDL 163.3 -> 156.6 us/layer at m = 1, 169.3 -> 163.3 at m = 8. Everywhere, depth 2
    // gained without PDL and lost with it (lab README, session 6: a third block slot per SM lets
    // the next kernel's early blocks land unevenly), except where the grid fills the slots.
    const bool manyWaves = static_cast<long long>((tilesN + tb - 1) / tb) * want >= 6LL * smCount;
    c.depth = m <= 8 && !manyWaves ? 4 : 2;
    const int lab = w8a16::labSmallDepth.load(std::memory_order_relaxed);
    if (m <= 8 && lab > 0) c.depth = lab;
    return fitSplit(c, want);
  };
  // Two tiles per warp at m = 9..16 (sweep of 2026-11-29, results/w8a16-2026-11-29-h200-run4-*):
  // each activation fragment then feeds two tiles' MMAs, halving the activation reads per weight
  // byte. At m = 16, 2 warp-tiles per block, depth 2, unsplit beat every other config on the 40B
  // q/o, gate and down shapes in both schemes (per-channel 30.8 -> 29.0, 76.4 -> 69.6,
  // 78.1 -> 64.0 us; per-group 41.3 -> 32.7, 93.3 -> 80.7, 108.7 -> 80.2 us), while the kv
  // projection (16 such blocks) stayed best with one tile per warp split 8 ways: so only when the
  // unsplit grid has at least half a block per SM.
  //
  // Those sweeps ran it at one block per SM (158 registers). Bounded to two (decodeMinBlocks), a
  // grid under one block per SM would leave half the slots empty, so it is split along K up to
  // the slots. 40B layer chain at m = 16 with PDL (qkv, o, gate/up, down): 195.5 us/layer, against
  // 212.2 with one tile per warp at depth 2 and ~224 before the bound. Per-group only with one
  // tile per warp: its two-tile variant spills under the bound (255.0 against 215.3 us/layer).
  if (m > 8 && m <= 16 && (tilesN + 3) / 4 >= smCount / 2 && w.scheme == Int8Scheme::PerChannel) {
    W8A16DecodeConfig c;
    c.tilesPerBlock = 2;
    c.tilesPerWarp = 2;
    c.depth = 2;
    return fitSplit(c, std::min(std::max(1, groups / 2), slots / ((tilesN + 3) / 4)));
  }
  const long long blocks2 = static_cast<long long>((tilesN + 1) / 2) * splitFor(2);
  if (m <= 8 && blocks2 > slots && fill(2) < 0.75) {
    int best = 2;
    for (int tb : {4, 8})
      if (fill(tb) > fill(best) + 0.1) best = tb;
    if (best != 2) {
      const W8A16DecodeConfig c = withSplit(best, splitFor(best));
      if (c.splitK == splitFor(best)) return c;
    }
  }
  return withSplit(2, splitFor(2));
}

size_t w8a16PrefillWorkspaceBytes(const W8A16Weight& w, int m, const W8A16PrefillConfig& cfg) {
  if (cfg.splitK <= 1) return 0;
  if (w8a16::prefillBlockTiles(w, m, cfg.tile) > w8a16::kMaxCounters) return static_cast<size_t>(-1);
  return w8a16::kCounterBytes + static_cast<size_t>(cfg.splitK) * m * w.n * sizeof(float);
}

W8A16PrefillConfig w8a16ChoosePrefillConfig(const W8A16Weight& w, int m, int smCount, size_t workspaceBytes) {
  // Fitted to the skinny sweep of 2026-11-29 (lab README, session 11; m = 48 and 64 on the 40B
  // and 76B shapes). Up to m = 64 the skinny tiles, whose 8 warps side by side along N dequantize
  // each weight fragment once: 64x128 where N has 16 or more 128-row blocks, split along K to
  // about one wave (at most 4; 2 when the unsplit grid is one to two waves), e.g. the 40B qkv
  // 94.6 -> 64.5 us at m = 48 (3 splits), down 160.6 -> 120.4 (4), gate/up 245 -> 209 (2),
  // against the 64x64 tile unsplit; 32x128 split up to 8 on narrower weights (the kv
  // projections, 59.9 -> 20.7). Above m = 64, the earlier tiles unsplit (the backend
  // dequantizes for cuBLAS there instead: w8a16KernelBeatsDequant).
  W8A16PrefillConfig c;
  if (m > w8a16::kSplitMaxM) {
    c.tile = w8a16ChoosePrefill(w, m, smCount);
    return c;
  }
  const bool narrow = !w8a16::splitWide(w);
  c.tile = narrow ? W8A16PrefillTile::M32N128S4 : W8A16PrefillTile::M64N128W8S3;
  const long long tiles = w8a16::prefillBlockTiles(w, m, c.tile);
  const long long slots = static_cast<long long>(w8a16::prefillShape(c.tile).perSm) * smCount;
  long long want = tiles <= slots ? std::min<long long>(narrow ? 8 : 4, slots / tiles) : tiles < 2 * slots ? 2 : 1;
  want = std::min<long long>(want, w8a16Groups(w.k));
  for (c.splitK = static_cast<int>(want); c.splitK > 1; --c.splitK) {
    const size_t need = w8a16PrefillWorkspaceBytes(w, m, c);
    if (need <= workspaceBytes && need - w8a16::kCounterBytes <= w8a16::kPrefillPartialBytes) break;
  }
  return c;
}

bool w8a16KernelBeatsDequant(const W8A16Weight& w, int m) {
  // Same sweep: at m = 48-64 dequantize + cuBLAS bf16 beat the best split tile on the kv
  // projections (40B k 16.6 / 17.9 us against 20.7 / 21.0), and at m = 96 on nearly every shape
  // (40B gate/up 376 against 385, down 193 against 206); the decode kernel wins up to m = 32.
  if (m <= kW8A16DecodeMaxM) return true;
  return m <= w8a16::kSplitMaxM && w8a16::splitWide(w);
}

W8A16PrefillTile w8a16ChoosePrefill(const W8A16Weight& w, int m, int smCount) {
  // From the sweep of 2026-11-28 (README): 64x64 tiles (2 blocks/SM) when 128x128 tiles cannot
  // fill half the GPU or m <= 64, or at m <= 256 when N is wide enough for 6 waves of 64x64
  // tiles; 128x128 with 4 stages otherwise.
  const long long rowsN = (static_cast<long long>(w.n) + 15) / 16 * 16;
  const long long blocks128 = ((m + 127) / 128) * ((rowsN + 127) / 128);
  const long long blocks64 = ((m + 63) / 64) * ((rowsN + 63) / 64);
  if (m <= 64 || 2 * blocks128 < smCount) return W8A16PrefillTile::M64N64S4;
  if (m <= 256 && blocks64 >= 6LL * smCount) return W8A16PrefillTile::M64N64S4;
  return W8A16PrefillTile::M128N128S4;
}

size_t w8a16WorkspaceBytes(const W8A16Weight& w) {
  const int sms = w8a16::smCount();
  size_t bytes = 0;
  for (int m = 1; m <= kW8A16DecodeMaxM; ++m) {
    const W8A16DecodeConfig cfg = w8a16ChooseDecode(w, m, sms, static_cast<size_t>(-1));
    bytes = std::max(bytes, w8a16DecodeWorkspaceBytes(w, m, cfg));
  }
  // The tensor-core kernel split along K (m > kW8A16DecodeMaxM): its partials' cap.
  return std::max(bytes, w8a16::kCounterBytes + w8a16::kPrefillPartialBytes);
}

namespace w8a16 {
// What every call passes (DecodeParams or PrefillParams): the weight, x, y, bias, their shapes.
template <class Params = DecodeParams>
Params callParams(const W8A16Weight& w, const bf16* x, int m, bf16* y, const bf16* bias) {
  Params p{};
  p.qw = reinterpret_cast<const uint4*>(w.qweight);
  p.scales = w.scales;
  p.x = x;
  p.bias = bias;
  p.y = y;
  p.m = m;
  p.n = w.n;
  p.k = w.k;
  p.groups = w8a16Groups(w.k);
  p.tilesN = (w.n + 15) / 16;
  return p;
}

// m = 17..32 where the decode kernel's grid spills into a second wave that it fills under 75 %
// (the 40B qkv: 288 blocks on 264 slots): the 32x128 split tile at about one wave instead, which
// the skinny sweep had at 47.9 against 59.7 us (m = 32; 43.7 against 49.3 at m = 17). In the
// 40B int8 decode step at batch 32 it gave 25.99 / 26.42 ms against 27.25 / 27.56 (same call,
// session 12); INTERNVL_CUDA_W8A16_SKINNY_FILL=0 keeps the decode kernel.
// Returns that configuration, or nothing where the decode kernel stays.
std::optional<W8A16PrefillConfig> skinnyFill(const W8A16Weight& w, int m, int sms, size_t workspaceBytes) {
  static const bool on = envSwitch("INTERNVL_CUDA_W8A16_SKINNY_FILL", true);
  if (!on || m <= 16 || m > kW8A16DecodeMaxM) return std::nullopt;
  const W8A16DecodeConfig d = w8a16ChooseDecode(w, m, sms, workspaceBytes);
  const long long blocks = static_cast<long long>((w.n + 15) / 16 + d.tilesPerBlock - 1) / d.tilesPerBlock * d.splitK;
  const long long slots = 2LL * sms, waves = (blocks + slots - 1) / slots;
  if (waves < 2 || static_cast<double>(blocks) / static_cast<double>(waves * slots) >= 0.75) return std::nullopt;
  W8A16PrefillConfig c;
  c.tile = W8A16PrefillTile::M32N128S4;
  const long long tiles = prefillBlockTiles(w, m, c.tile);
  c.splitK = static_cast<int>(std::max(1LL, std::min<long long>({8, slots / tiles, w8a16Groups(w.k)})));
  if (c.splitK > 1 && w8a16PrefillWorkspaceBytes(w, m, c) > workspaceBytes) return std::nullopt;
  return c;
}

// The decode kernel with an explicit configuration (the caller has checked w, x, m and y);
// silu: the SILU form (y [m, N / 2] = silu(gate) · up of a stacked [gate | up] weight).
// The decoder's residual stream around the GEMV (gemm_w8a16.h): the deferred RMSNorm's 1/rms in
// front (rmsSq), the residual add, the next norm's x ⊙ g and its sums of squares behind.
struct DecodeFusion {
  const float* rmsSq = nullptr;
  int rmsSlots = 0;
  float rmsEps = 0.f;
  bool residual = false;
  const float* nextW = nullptr;
  bf16* nextX = nullptr;
  float* nextSq = nullptr;
  int* nextSlots = nullptr;  // receives the grid's blocks along N (the slots written)
};

void decodeCall(const W8A16Weight& w, const bf16* x, int m, bf16* y, const bf16* bias, const W8A16DecodeConfig& cfg,
                void* workspace, size_t workspaceBytes, cudaStream_t stream, bool silu = false,
                const DecodeFusion& fusion = {}) {
  if (m == 0) return;
  ivl::require(m <= kW8A16DecodeMaxM, ivl::ErrorCode::InvalidArg,
               "gemmW8A16Decode: m must be <= " + std::to_string(kW8A16DecodeMaxM) + ", got " + std::to_string(m));
  ivl::require(cfg.tilesPerBlock == 8 || cfg.tilesPerBlock == 4 || cfg.tilesPerBlock == 2,
               ivl::ErrorCode::InvalidArg, "gemmW8A16Decode: tilesPerBlock must be 8, 4 or 2");
  ivl::require(cfg.tilesPerWarp == 1 || cfg.tilesPerWarp == 2, ivl::ErrorCode::InvalidArg,
               "gemmW8A16Decode: tilesPerWarp must be 1 or 2");
  const int groups = w8a16Groups(w.k);
  ivl::require(cfg.splitK >= 1 && cfg.splitK <= groups && cfg.splitK <= 65535, ivl::ErrorCode::InvalidArg,
               "gemmW8A16Decode: splitK must be in [1, K/128]");
  ivl::require(fusion.rmsSq == nullptr || (w8a16RmsRuns(m, fusion.rmsSlots) && cfg.tilesPerWarp == 1),
               ivl::ErrorCode::InvalidArg, "gemmW8A16Rms: the RMS form takes m <= 8 rows of at most " +
                                               std::to_string(kW8A16RmsMaxSlots) + " slot sums and one tile per warp");
  ivl::require(fusion.nextX == nullptr || (m <= 8 && fusion.nextW != nullptr && fusion.nextSq != nullptr),
               ivl::ErrorCode::InvalidArg, "gemmW8A16Residual: the next norm's input takes m <= 8 and its weight and sums");
  ivl::require(!fusion.residual || !silu, ivl::ErrorCode::InvalidArg, "gemmW8A16Residual: not the SILU form");
  w8a16::DecodeParams p = callParams(w, x, m, y, bias);
  p.tb = cfg.tilesPerBlock;
  p.splitK = cfg.splitK;
  p.rmsSq = fusion.rmsSq;
  p.rmsSlots = fusion.rmsSlots;
  p.rmsEps = fusion.rmsEps;
  p.residual = fusion.residual ? 1 : 0;
  p.nextW = fusion.nextW;
  p.nextX = fusion.nextX;
  p.nextSq = fusion.nextSq;
  p.l2Ahead = w8a16::l2AheadUnits.load(std::memory_order_relaxed);
#ifdef IVL_KERNEL_TRACE
  p.prologueUnits = w8a16::labPrologueUnits.load(std::memory_order_relaxed);
#endif
  int blocksN = (p.tilesN + p.tb * cfg.tilesPerWarp - 1) / (p.tb * cfg.tilesPerWarp);
  if (silu) {
    ivl::require(w.n % 32 == 0 && cfg.tilesPerWarp == 1, ivl::ErrorCode::InvalidArg,
                 "gemmW8A16SiluMul: the stacked weight needs two halves of whole 16-row tiles and one tile per warp");
    p.tilesF = p.tilesN / 2;
    blocksN = (p.tilesF + p.tb / 2 - 1) / (p.tb / 2);
  }
  if (cfg.splitK > 1) {
    const size_t need = w8a16DecodeWorkspaceBytes(w, m, cfg);
    ivl::require(blocksN <= w8a16::kMaxCounters, ivl::ErrorCode::InvalidArg,
                 "gemmW8A16Decode: splitK > 1 supports at most " + std::to_string(w8a16::kMaxCounters) +
                     " blocks along N");
    ivl::require(workspace != nullptr && workspaceBytes >= need &&
                     reinterpret_cast<uintptr_t>(workspace) % 256 == 0,
                 ivl::ErrorCode::InvalidArg,
                 "gemmW8A16Decode: splitK > 1 needs a zeroed, 256-byte aligned workspace of " +
                     std::to_string(need) + " bytes");
    p.counters = static_cast<int*>(workspace);
    p.partial = reinterpret_cast<float*>(static_cast<char*>(workspace) + w8a16::kCounterBytes);
  }
  const dim3 grid(blocksN, cfg.splitK);
  if (fusion.nextSlots != nullptr) *fusion.nextSlots = (w.n + 31) / 32;
  if (w.scheme == Int8Scheme::PerGroup128)
    w8a16::launchDecodeMT<true>(p, grid, cfg.depth, cfg.tilesPerWarp, silu, stream);
  else
    w8a16::launchDecodeMT<false>(p, grid, cfg.depth, cfg.tilesPerWarp, silu, stream);
  IVL_CUDA_CHECK(cudaGetLastError());
}

// The launcher's configuration for m decode rows on `sms` SMs (w8a16ChooseDecode), then the call.
void decodeChosen(const W8A16Weight& w, const bf16* x, int m, bf16* y, const bf16* bias, int sms, void* workspace,
                  size_t workspaceBytes, cudaStream_t stream, bool silu = false, const DecodeFusion& fusion = {}) {
  const W8A16DecodeConfig cfg = w8a16ChooseDecode(w, m, sms, workspace != nullptr ? workspaceBytes : 0);
  decodeCall(w, x, m, y, bias, cfg, workspace, workspaceBytes, stream, silu, fusion);
}

// The RMS form's entry checks (gemmW8A16Rms / gemmW8A16SiluMulRms): whether it runs.
bool rmsRuns(const W8A16Weight& w, int m, const W8A16RmsRows& rows, bool silu, const char* who) {
  ivl::require(rows.squares != nullptr, ivl::ErrorCode::InvalidArg, std::string(who) + ": no row sums given");
  return w8a16RmsRuns(m, rows.slots) && (!silu || w.n % 32 == 0);
}

// gemmW8A16Rms / gemmW8A16SiluMulRms (silu): the launcher's configuration with the RMS form.
bool rmsCall(const W8A16Weight& w, const bf16* x, int m, bf16* y, const bf16* bias, const W8A16RmsRows& rows,
             bool silu, const char* who, cudaStream_t stream, void* workspace, size_t workspaceBytes) {
  checkCall(w, x, m, y, who);
  if (m == 0) return true;
  if (!rmsRuns(w, m, rows, silu, who)) return false;
  decodeChosen(w, x, m, y, bias, smCount(), workspace, workspaceBytes, stream, silu,
               DecodeFusion{rows.squares, rows.slots, rows.eps});
  return true;
}
}  // namespace w8a16

void gemmW8A16Decode(const W8A16Weight& w, const bf16* x, int m, bf16* y, const bf16* bias,
                     const W8A16DecodeConfig& cfg, void* workspace, size_t workspaceBytes, cudaStream_t stream) {
  w8a16::checkCall(w, x, m, y, "gemmW8A16Decode");
  w8a16::decodeCall(w, x, m, y, bias, cfg, workspace, workspaceBytes, stream);
}

bool gemmW8A16SiluMul(const W8A16Weight& w, const bf16* x, int m, bf16* y, cudaStream_t stream, void* workspace,
                      size_t workspaceBytes) {
  w8a16::checkCall(w, x, m, y, "gemmW8A16SiluMul");
  if (m == 0) return true;
  if (m > kW8A16DecodeMaxM || w.n % 32 != 0) return false;
  const W8A16DecodeConfig cfg =
      w8a16ChooseDecode(w, m, w8a16::smCount(), workspace != nullptr ? workspaceBytes : 0);
  if (cfg.tilesPerWarp != 1) return false;  // two tiles per warp (m = 9..16) would be given up
  w8a16::decodeCall(w, x, m, y, nullptr, cfg, workspace, workspaceBytes, stream, true);
  return true;
}

void gemmW8A16DecodeFused(const W8A16Weight& w, const bf16* x, int m, bf16* y, const bf16* bias,
                          const W8A16DecodeConfig& cfg, void* workspace, size_t workspaceBytes, cudaStream_t stream,
                          bool silu, const W8A16RmsRows* rms, bool residual, const float* nextW, bf16* nextX,
                          float* nextSq, int* nextSlots) {
  w8a16::checkCall(w, x, m, y, "gemmW8A16DecodeFused");
  if (rms != nullptr) w8a16::rmsRuns(w, m, *rms, silu, "gemmW8A16DecodeFused");
  w8a16::decodeCall(w, x, m, y, bias, cfg, workspace, workspaceBytes, stream, silu,
                    w8a16::DecodeFusion{rms ? rms->squares : nullptr, rms ? rms->slots : 0, rms ? rms->eps : 0.f,
                                        residual, nextW, nextX, nextSq, nextSlots});
}

bool gemmW8A16Rms(const W8A16Weight& w, const bf16* x, int m, bf16* y, const bf16* bias, const W8A16RmsRows& rows,
                  cudaStream_t stream, void* workspace, size_t workspaceBytes) {
  return w8a16::rmsCall(w, x, m, y, bias, rows, false, "gemmW8A16Rms", stream, workspace, workspaceBytes);
}

bool gemmW8A16SiluMulRms(const W8A16Weight& w, const bf16* x, int m, bf16* y, const W8A16RmsRows& rows,
                         cudaStream_t stream, void* workspace, size_t workspaceBytes) {
  return w8a16::rmsCall(w, x, m, y, nullptr, rows, true, "gemmW8A16SiluMulRms", stream, workspace, workspaceBytes);
}

bool gemmW8A16Residual(const W8A16Weight& w, const bf16* x, int m, bf16* y, const bf16* bias, cudaStream_t stream,
                       void* workspace, size_t workspaceBytes, const float* nextW, bf16* nextX, W8A16RmsRows* nextRows) {
  w8a16::checkCall(w, x, m, y, "gemmW8A16Residual");
  ivl::require((nextW == nullptr) == (nextX == nullptr) && (nextX == nullptr) == (nextRows == nullptr) &&
                   (nextRows == nullptr || nextRows->squares != nullptr),
               ivl::ErrorCode::InvalidArg, "gemmW8A16Residual: the next norm's weight, input and sums go together");
  if (m == 0) return true;
  const int sms = w8a16::smCount();
  const size_t ws = workspace != nullptr ? workspaceBytes : 0;
  if (m > kW8A16DecodeMaxM || w8a16::skinnyFill(w, m, sms, ws)) return false;  // not the decode kernel
  const W8A16DecodeConfig cfg = w8a16ChooseDecode(w, m, sms, ws);
  if (nextX != nullptr && !w8a16RmsRuns(m, (w.n + 31) / 32)) return false;  // the RMS form could not take the sums
  int slots = 0;
  w8a16::decodeCall(w, x, m, y, bias, cfg, workspace, workspaceBytes, stream, false,
                    w8a16::DecodeFusion{nullptr, 0, 0.f, true, nextW, nextX,
                                        nextRows ? const_cast<float*>(nextRows->squares) : nullptr, &slots});
  if (nextRows != nullptr) nextRows->slots = slots;
  return true;
}

bool w8a16RmsPrep(const bf16* x, int m, int n, const float* g, bf16* nextX, W8A16RmsRows& rows, cudaStream_t stream) {
  ivl::require(x != nullptr && g != nullptr && nextX != nullptr && rows.squares != nullptr && m >= 0 && n > 0,
               ivl::ErrorCode::InvalidArg, "w8a16RmsPrep: null pointer or bad shape");
  const int slots = (n + 31) / 32;
  if (m == 0 || !w8a16RmsRuns(m, slots)) return false;
  const int warps = slots * m, perBlock = 8;
  w8a16::rmsPrepKernel<<<(warps + perBlock - 1) / perBlock, perBlock * 32, 0, stream>>>(
      x, m, n, g, nextX, const_cast<float*>(rows.squares));
  IVL_CUDA_CHECK(cudaGetLastError());
  rows.slots = slots;
  return true;
}

void gemmW8A16SiluMulDecode(const W8A16Weight& w, const bf16* x, int m, bf16* y, const W8A16DecodeConfig& cfg,
                            void* workspace, size_t workspaceBytes, cudaStream_t stream) {
  w8a16::checkCall(w, x, m, y, "gemmW8A16SiluMul");
  w8a16::decodeCall(w, x, m, y, nullptr, cfg, workspace, workspaceBytes, stream, true);
}

void gemmW8A16PrefillSplit(const W8A16Weight& w, const bf16* x, int m, bf16* y, const bf16* bias,
                           const W8A16PrefillConfig& cfg, void* workspace, size_t workspaceBytes, cudaStream_t stream) {
  w8a16::checkCall(w, x, m, y, "gemmW8A16Prefill");
  if (m == 0) return;
  w8a16::PrefillParams p = w8a16::callParams<w8a16::PrefillParams>(w, x, m, y, bias);
  ivl::require((static_cast<long long>(p.tilesN) * 16 + 63) / 64 <= 65535, ivl::ErrorCode::InvalidArg,
               "gemmW8A16Prefill: N too large for the grid");
  ivl::require(cfg.splitK >= 1 && cfg.splitK <= p.groups && cfg.splitK <= 65535, ivl::ErrorCode::InvalidArg,
               "gemmW8A16Prefill: splitK must be in [1, K/128], got " + std::to_string(cfg.splitK));
  p.splitK = cfg.splitK;
  if (cfg.splitK > 1) {
    const size_t need = w8a16PrefillWorkspaceBytes(w, m, cfg);
    ivl::require(need != static_cast<size_t>(-1), ivl::ErrorCode::InvalidArg,
                 "gemmW8A16Prefill: splitK > 1 supports at most " + std::to_string(w8a16::kMaxCounters) +
                     " block tiles");
    ivl::require(workspace != nullptr && workspaceBytes >= need && reinterpret_cast<uintptr_t>(workspace) % 256 == 0,
                 ivl::ErrorCode::InvalidArg,
                 "gemmW8A16Prefill: splitK > 1 needs a zeroed, 256-byte aligned workspace of " + std::to_string(need) +
                     " bytes");
    p.counters = static_cast<int*>(workspace);
    p.partial = reinterpret_cast<float*>(static_cast<char*>(workspace) + w8a16::kCounterBytes);
  }
  if (w.scheme == Int8Scheme::PerGroup128)
    w8a16::launchPrefillTile<true>(p, cfg.tile, stream);
  else
    w8a16::launchPrefillTile<false>(p, cfg.tile, stream);
  IVL_CUDA_CHECK(cudaGetLastError());
}

void gemmW8A16Prefill(const W8A16Weight& w, const bf16* x, int m, bf16* y, const bf16* bias,
                      W8A16PrefillTile tile, cudaStream_t stream) {
  gemmW8A16PrefillSplit(w, x, m, y, bias, W8A16PrefillConfig{tile, 1}, nullptr, 0, stream);
}

void gemmW8A16(const W8A16Weight& w, const bf16* x, int m, bf16* y, const bf16* bias, cudaStream_t stream,
               void* workspace, size_t workspaceBytes) {
  w8a16::checkCall(w, x, m, y, "gemmW8A16");
  if (m == 0) return;
  const int sms = w8a16::smCount();
  const size_t ws = workspace != nullptr ? workspaceBytes : 0;
  if (m > kW8A16DecodeMaxM)
    return gemmW8A16PrefillSplit(w, x, m, y, bias, w8a16ChoosePrefillConfig(w, m, sms, ws), workspace, ws, stream);
  if (const auto fill = w8a16::skinnyFill(w, m, sms, ws))
    return gemmW8A16PrefillSplit(w, x, m, y, bias, *fill, workspace, ws, stream);
  w8a16::decodeChosen(w, x, m, y, bias, sms, workspace, workspaceBytes, stream);
}

}  // namespace ivl::cuda
