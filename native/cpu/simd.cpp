#include "cpu/simd.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define IVL_X86_SIMD 1
#include <immintrin.h>
#endif

namespace ivl::cpu::simd {

#ifdef IVL_X86_SIMD

#define IVL_AVX2 __attribute__((target("avx2,fma")))

bool available() {
  static const bool on = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return on;
}

namespace {

IVL_AVX2 inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);                    // 4 lanes
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));  // 2 lanes
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));    // 1 lane
  return _mm_cvtss_f32(lo);
}

// 8 bf16 -> 8 f32: zero-extend to 32 bits and shift into the high half.
IVL_AVX2 inline __m256 loadBf16(const uint16_t* p) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline float bf16(uint16_t h) {
  uint32_t b = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// MR×NR outputs; accumulators stay in registers (MR·NR ≤ 12, plus MR x-loads and one w-load).
template <int MR, int NR, bool BF16>
IVL_AVX2 void tile(const float* x, int64_t ldx, const void* wv, int64_t ldw, float* y, int64_t ldy, int64_t K) {
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  }
  const float* wf = static_cast<const float*>(wv);
  const uint16_t* wb = static_cast<const uint16_t*>(wv);
  const int64_t K8 = K & ~int64_t(7);
  for (int64_t k = 0; k < K8; k += 8) {
    __m256 xv[MR];
    for (int i = 0; i < MR; ++i) xv[i] = _mm256_loadu_ps(x + i * ldx + k);
    for (int j = 0; j < NR; ++j) {
      const __m256 wj = BF16 ? loadBf16(wb + j * ldw + k) : _mm256_loadu_ps(wf + j * ldw + k);
      for (int i = 0; i < MR; ++i) acc[i][j] = _mm256_fmadd_ps(xv[i], wj, acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      float s = hsum(acc[i][j]);
      for (int64_t k = K8; k < K; ++k) s += x[i * ldx + k] * (BF16 ? bf16(wb[j * ldw + k]) : wf[j * ldw + k]);
      y[i * ldy + j] = s;
    }
  }
}

// 8 int8 -> 8 f32, times the (broadcast) scale.
IVL_AVX2 inline __m256 loadI8(const int8_t* p, __m256 s) {
  __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), s);
}

// As tile<>, int8 weights with scales per (row, group of `group` columns); groups are walked
// in order so each 8-column step lies inside one group.
template <int MR, int NR>
IVL_AVX2 void tileI8(const float* x, int64_t ldx, const int8_t* w, int64_t ldw, const float* sc, int64_t lds,
                     int64_t group, float* y, int64_t ldy, int64_t K) {
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  }
  const int64_t K8 = K & ~int64_t(7);
  for (int64_t g0 = 0, gi = 0; g0 < K8; g0 += group, ++gi) {
    const int64_t g1 = std::min(K8, g0 + group);
    __m256 sj[NR];
    for (int j = 0; j < NR; ++j) sj[j] = _mm256_set1_ps(sc[j * lds + gi]);
    for (int64_t k = g0; k < g1; k += 8) {
      __m256 xv[MR];
      for (int i = 0; i < MR; ++i) xv[i] = _mm256_loadu_ps(x + i * ldx + k);
      for (int j = 0; j < NR; ++j) {
        const __m256 wj = loadI8(w + j * ldw + k, sj[j]);
        for (int i = 0; i < MR; ++i) acc[i][j] = _mm256_fmadd_ps(xv[i], wj, acc[i][j]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      float s = hsum(acc[i][j]);
      for (int64_t k = K8; k < K; ++k) {
        const float wk = float(w[j * ldw + k]) * sc[j * lds + k / group];
        s += x[i * ldx + k] * wk;
      }
      y[i * ldy + j] = s;
    }
  }
}

template <bool BF16>
IVL_AVX2 void dispatchTile(const float* x, int64_t ldx, const void* w, int64_t ldw, float* y, int64_t ldy, int mr,
                           int nr, int64_t K) {
#define IVL_TILE(M, N) \
  case (M) * 8 + (N): tile<M, N, BF16>(x, ldx, w, ldw, y, ldy, K); return;
  switch (mr * 8 + nr) {
    IVL_TILE(1, 1) IVL_TILE(1, 2) IVL_TILE(1, 3) IVL_TILE(1, 4)
    IVL_TILE(2, 1) IVL_TILE(2, 2) IVL_TILE(2, 3) IVL_TILE(2, 4)
    IVL_TILE(3, 1) IVL_TILE(3, 2) IVL_TILE(3, 3) IVL_TILE(3, 4)
    default: return;  // unreachable: callers pass 1..3 × 1..4
  }
#undef IVL_TILE
}

IVL_AVX2 void dispatchTileI8(const float* x, int64_t ldx, const int8_t* w, int64_t ldw, const float* sc, int64_t lds,
                             int64_t group, float* y, int64_t ldy, int mr, int nr, int64_t K) {
#define IVL_TILE(M, N) \
  case (M) * 8 + (N): tileI8<M, N>(x, ldx, w, ldw, sc, lds, group, y, ldy, K); return;
  switch (mr * 8 + nr) {
    IVL_TILE(1, 1) IVL_TILE(1, 2) IVL_TILE(1, 3) IVL_TILE(1, 4)
    IVL_TILE(2, 1) IVL_TILE(2, 2) IVL_TILE(2, 3) IVL_TILE(2, 4)
    IVL_TILE(3, 1) IVL_TILE(3, 2) IVL_TILE(3, 3) IVL_TILE(3, 4)
    default: return;  // unreachable: callers pass 1..3 × 1..4
  }
#undef IVL_TILE
}

}  // namespace

IVL_AVX2 void gemmTileI8(const float* x, int64_t ldx, const int8_t* w, int64_t ldw, const float* scales, int64_t lds,
                         int64_t group, float* y, int64_t ldy, int mr, int nr, int64_t K) {
  dispatchTileI8(x, ldx, w, ldw, scales, lds, group, y, ldy, mr, nr, K);
}

IVL_AVX2 void gemmTileF32(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y, int64_t ldy, int mr,
                          int nr, int64_t K) {
  dispatchTile<false>(x, ldx, w, ldw, y, ldy, mr, nr, K);
}

IVL_AVX2 void gemmTileBf16(const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, float* y, int64_t ldy,
                           int mr, int nr, int64_t K) {
  dispatchTile<true>(x, ldx, w, ldw, y, ldy, mr, nr, K);
}

IVL_AVX2 void widenBf16(float* dst, const uint16_t* src, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, loadBf16(src + i));
  for (; i < n; ++i) dst[i] = bf16(src[i]);
}

#else  // no x86 SIMD: available() is false and the backend never calls the others

bool available() { return false; }
void gemmTileF32(const float*, int64_t, const float*, int64_t, float*, int64_t, int, int, int64_t) {}
void gemmTileBf16(const float*, int64_t, const uint16_t*, int64_t, float*, int64_t, int, int, int64_t) {}
void widenBf16(float*, const uint16_t*, int64_t) {}
void gemmTileI8(const float*, int64_t, const int8_t*, int64_t, const float*, int64_t, int64_t, float*, int64_t, int,
                int, int64_t) {}

#endif

}  // namespace ivl::cpu::simd
