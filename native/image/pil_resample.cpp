#include "image/pil_resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define IVL_X86 1
#endif

#include "runtime/error.h"

namespace ivl::image {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS for 8-bit images
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);
constexpr double kBicubicSupport = 2.0;

double bicubicFilter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

}  // namespace

Coeffs precomputeCoeffs(int inSize, int outSize) {
  // Box (0, inSize): the default of Image.resize. Pillow keeps the box in floats.
  const double in0 = 0.0;
  const double in1 = static_cast<double>(static_cast<float>(inSize));
  double scale = (in1 - in0) / outSize;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = kBicubicSupport * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(size_t(outSize) * 2);
  c.kk.assign(size_t(outSize) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < outSize; ++xx) {
    double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0;
    double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as Pillow's (int) cast
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    for (int x = 0; x < xmax; ++x) {
      double w = bicubicFilter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
    }
    for (int x = xmax; x < c.ksize; ++x) k[x] = 0;
    // Fixed point, rounding half away from zero (normalize_coeffs_8bpc).
    for (int x = 0; x < c.ksize; ++x) {
      double v = k[x] * (1 << kPrecisionBits);
      c.kk[size_t(xx) * c.ksize + x] = static_cast<int32_t>(k[x] < 0 ? -0.5 + v : 0.5 + v);
    }
    c.bounds[size_t(xx) * 2] = xmin;
    c.bounds[size_t(xx) * 2 + 1] = xmax;
  }
  return c;
}

namespace {

inline uint8_t clip8(int32_t v) {
  int32_t s = v >> kPrecisionBits;  // arithmetic shift, as Pillow's lookup index
  return static_cast<uint8_t>(s < 0 ? 0 : s > 255 ? 255 : s);
}

bool haveAvx2() {
#if IVL_X86
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
#else
  return false;
#endif
}

// ---- horizontal pass ---------------------------------------------------------------
//
// Rows are taken 8 at a time and transposed to [inW][8 rows][3 channels] (24 bytes per
// input column), so that every tap of an output column is one multiply of 24 lanes by
// the same coefficient. Integer sums are exact in any order: the result is Pillow's,
// lane for lane.
constexpr int kBlock = 8;
constexpr int kLanes = kBlock * 3;

// rows[r] (r < kBlock) -> T [inW][24]. T has 8 spare bytes at the end.
void transposeBlock(const uint8_t* const* rows, int inW, uint8_t* T) {
  for (int x = 0; x + 1 < inW; ++x) {
    uint8_t* t = T + size_t(x) * kLanes;
    for (int r = 0; r < kBlock; ++r) {
      uint32_t v;
      std::memcpy(&v, rows[r] + size_t(x) * 3, 4);  // the 4th byte is the next pixel's, overwritten next
      std::memcpy(t + r * 3, &v, 4);
    }
  }
  uint8_t* t = T + size_t(inW - 1) * kLanes;
  for (int r = 0; r < kBlock; ++r) std::memcpy(t + r * 3, rows[r] + size_t(inW - 1) * 3, 3);
}

#if IVL_X86
// The same transpose, 8 pixels × 8 rows at a time: RGB → RGBX dwords, an 8×8 dword
// transpose, RGBX → RGB. About 3× faster than the scalar copies.
__attribute__((target("avx2"))) void transposeBlockAvx2(const uint8_t* const* rows, int inW, uint8_t* T) {
  const __m256i expand = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1,  //
                                          0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
  const __m256i compact = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,  //
                                           0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
  int x = 0;
  // A group reads 28 bytes from x·3 (two 16-byte loads at +0 and +12): stay inside the row.
  for (; x + 10 <= inW; x += 8) {
    __m256i R[8];
    for (int r = 0; r < kBlock; ++r) {
      const uint8_t* p = rows[r] + size_t(x) * 3;
      __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
                                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 12)), 1);
      R[r] = _mm256_shuffle_epi8(v, expand);  // pixels 0..3 | 4..7 as RGBX dwords
    }
    __m256i t[8], u[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_epi32(R[2 * i], R[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_epi32(R[2 * i], R[2 * i + 1]);
    }
    for (int h = 0; h < 2; ++h) {  // rows 0..3, rows 4..7
      const __m256i* q = t + 4 * h;
      u[4 * h + 0] = _mm256_unpacklo_epi64(q[0], q[2]);  // pixel 0 | 4
      u[4 * h + 1] = _mm256_unpackhi_epi64(q[0], q[2]);  // pixel 1 | 5
      u[4 * h + 2] = _mm256_unpacklo_epi64(q[1], q[3]);  // pixel 2 | 6
      u[4 * h + 3] = _mm256_unpackhi_epi64(q[1], q[3]);  // pixel 3 | 7
    }
    uint8_t* dst = T + size_t(x) * kLanes;
    for (int j = 0; j < 8; ++j) {
      const int k = j & 3;
      const __m256i col = j < 4 ? _mm256_permute2x128_si256(u[k], u[4 + k], 0x20) : _mm256_permute2x128_si256(u[k], u[4 + k], 0x31);
      const __m256i c = _mm256_shuffle_epi8(col, compact);  // rows 0..3 in 12 bytes | rows 4..7 in 12 bytes
      // In increasing order: each store's 4 spare bytes land where the next one writes.
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j * kLanes), _mm256_castsi256_si128(c));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j * kLanes + 12), _mm256_extracti128_si256(c, 1));
    }
  }
  for (; x < inW; ++x) {
    uint8_t* t1 = T + size_t(x) * kLanes;
    for (int r = 0; r < kBlock; ++r) std::memcpy(t1 + r * 3, rows[r] + size_t(x) * 3, 3);
  }
}
#endif

void transpose(const uint8_t* const* rows, int inW, uint8_t* T) {
#if IVL_X86
  if (haveAvx2()) {
    transposeBlockAvx2(rows, inW, T);
    return;
  }
#endif
  transposeBlock(rows, inW, T);
}

// Writes lanes (24 clipped bytes for one output column) to the 8 output rows at column xx.
inline void scatterColumn(const uint8_t* lanes, uint8_t* const* out, int nrows, int xx, bool last) {
  for (int r = 0; r < nrows; ++r) {
    if (last) {
      std::memcpy(out[r] + size_t(xx) * 3, lanes + r * 3, 3);
    } else {
      uint32_t v;
      std::memcpy(&v, lanes + r * 3, 4);
      std::memcpy(out[r] + size_t(xx) * 3, &v, 4);  // spills one byte into column xx+1, written next
    }
  }
}

void hblockScalar(const uint8_t* T, const Coeffs& c, int outW, uint8_t* const* out, int nrows) {
  int32_t acc[kLanes];
  uint8_t lanes[kLanes + 8];
  for (int xx = 0; xx < outW; ++xx) {
    const int xmin = c.bounds[size_t(xx) * 2], n = c.bounds[size_t(xx) * 2 + 1];
    const int32_t* k = &c.kk[size_t(xx) * c.ksize];
    for (int l = 0; l < kLanes; ++l) acc[l] = kHalf;
    for (int x = 0; x < n; ++x) {
      const uint8_t* p = T + size_t(xmin + x) * kLanes;
      for (int l = 0; l < kLanes; ++l) acc[l] += p[l] * k[x];
    }
    for (int l = 0; l < kLanes; ++l) lanes[l] = clip8(acc[l]);
    scatterColumn(lanes, out, nrows, xx, xx == outW - 1);
  }
}

#if IVL_X86
// 8 int32 lanes -> shifted, then 4 such vectors packed to 32 clipped bytes in lane order.
__attribute__((target("avx2"))) inline __m256i packClip(__m256i a0, __m256i a1, __m256i a2, __m256i a3) {
  a0 = _mm256_srai_epi32(a0, kPrecisionBits);
  a1 = _mm256_srai_epi32(a1, kPrecisionBits);
  a2 = _mm256_srai_epi32(a2, kPrecisionBits);
  a3 = _mm256_srai_epi32(a3, kPrecisionBits);
  // packs saturates to int16 (|values| stay far below), packus clips to 0..255 like clip8.
  __m256i p01 = _mm256_packs_epi32(a0, a1);   // a0[0..3] a1[0..3] | a0[4..7] a1[4..7]
  __m256i p23 = _mm256_packs_epi32(a2, a3);   // a2[0..3] a3[0..3] | a2[4..7] a3[4..7]
  __m256i b = _mm256_packus_epi16(p01, p23);  // dwords: a0l a1l a2l a3l | a0h a1h a2h a3h
  return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

__attribute__((target("avx2"))) inline __m256i widen8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

__attribute__((target("avx2"))) void hblockAvx2(const uint8_t* T, const Coeffs& c, int outW, uint8_t* const* out,
                                                 int nrows) {
  alignas(32) uint8_t lanes[32];
  const __m256i half = _mm256_set1_epi32(kHalf);
  for (int xx = 0; xx < outW; ++xx) {
    const int xmin = c.bounds[size_t(xx) * 2], n = c.bounds[size_t(xx) * 2 + 1];
    const int32_t* k = &c.kk[size_t(xx) * c.ksize];
    const uint8_t* p = T + size_t(xmin) * kLanes;
    __m256i s0 = half, s1 = half, s2 = half;
    __m256i t0 = _mm256_setzero_si256(), t1 = t0, t2 = t0;
    int x = 0;
    for (; x + 1 < n; x += 2, p += 2 * kLanes) {
      const __m256i ka = _mm256_set1_epi32(k[x]), kb = _mm256_set1_epi32(k[x + 1]);
      s0 = _mm256_add_epi32(s0, _mm256_mullo_epi32(widen8(p), ka));
      s1 = _mm256_add_epi32(s1, _mm256_mullo_epi32(widen8(p + 8), ka));
      s2 = _mm256_add_epi32(s2, _mm256_mullo_epi32(widen8(p + 16), ka));
      t0 = _mm256_add_epi32(t0, _mm256_mullo_epi32(widen8(p + kLanes), kb));
      t1 = _mm256_add_epi32(t1, _mm256_mullo_epi32(widen8(p + kLanes + 8), kb));
      t2 = _mm256_add_epi32(t2, _mm256_mullo_epi32(widen8(p + kLanes + 16), kb));
    }
    if (x < n) {
      const __m256i ka = _mm256_set1_epi32(k[x]);
      s0 = _mm256_add_epi32(s0, _mm256_mullo_epi32(widen8(p), ka));
      s1 = _mm256_add_epi32(s1, _mm256_mullo_epi32(widen8(p + 8), ka));
      s2 = _mm256_add_epi32(s2, _mm256_mullo_epi32(widen8(p + 16), ka));
    }
    s0 = _mm256_add_epi32(s0, t0);
    s1 = _mm256_add_epi32(s1, t1);
    s2 = _mm256_add_epi32(s2, t2);
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), packClip(s0, s1, s2, _mm256_setzero_si256()));
    scatterColumn(lanes, out, nrows, xx, xx == outW - 1);
  }
}
#endif

// ---- vertical pass -------------------------------------------------------------------
// One output row = clip(sum over taps of k[t] * rows[t]), along len contiguous bytes.

// Bytes [from, len) of the row.
void vrowScalar(const uint8_t* const* rows, int n, const int32_t* k, size_t from, size_t len, uint8_t* out) {
  constexpr size_t kChunk = 256;
  int32_t acc[kChunk];
  for (size_t j0 = from; j0 < len; j0 += kChunk) {
    const size_t m = std::min(kChunk, len - j0);
    for (size_t j = 0; j < m; ++j) acc[j] = kHalf;
    for (int y = 0; y < n; ++y) {
      const uint8_t* src = rows[y] + j0;
      const int32_t ky = k[y];
      for (size_t j = 0; j < m; ++j) acc[j] += src[j] * ky;
    }
    for (size_t j = 0; j < m; ++j) out[j0 + j] = clip8(acc[j]);
  }
}

#if IVL_X86
__attribute__((target("avx2"))) void vrowAvx2(const uint8_t* const* rows, int n, const int32_t* k, size_t len,
                                               uint8_t* out) {
  const __m256i half = _mm256_set1_epi32(kHalf);
  size_t j = 0;
  for (; j + 32 <= len; j += 32) {
    __m256i a0 = half, a1 = half, a2 = half, a3 = half;
    for (int y = 0; y < n; ++y) {
      const uint8_t* src = rows[y] + j;
      const __m256i ky = _mm256_set1_epi32(k[y]);
      a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(widen8(src), ky));
      a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(widen8(src + 8), ky));
      a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(widen8(src + 16), ky));
      a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(widen8(src + 24), ky));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), packClip(a0, a1, a2, a3));
  }
  if (j < len) vrowScalar(rows, n, k, j, len, out);
}
#endif

void vrow(const uint8_t* const* rows, int n, const int32_t* k, size_t len, uint8_t* out) {
#if IVL_X86
  if (haveAvx2()) {
    vrowAvx2(rows, n, k, len, out);
    return;
  }
#endif
  vrowScalar(rows, n, k, 0, len, out);
}

void hblock(const uint8_t* T, const Coeffs& c, int outW, uint8_t* const* out, int nrows) {
#if IVL_X86
  if (haveAvx2()) {
    hblockAvx2(T, c, outW, out, nrows);
    return;
  }
#endif
  hblockScalar(T, c, outW, out, nrows);
}

}  // namespace

// ---- one resize as a stream of rows ----------------------------------------------------

Resize::Resize(const uint8_t* src, int srcW, int srcH, int dstW, int dstH)
    : src_(src), srcW_(srcW), srcH_(srcH), dstW_(dstW), dstH_(dstH), needH_(dstW != srcW), needV_(dstH != srcH) {
  require(srcW > 0 && srcH > 0 && dstW > 0 && dstH > 0, ErrorCode::InvalidArg,
          "resize: sizes must be positive (" + std::to_string(srcW) + "x" + std::to_string(srcH) + " -> " +
              std::to_string(dstW) + "x" + std::to_string(dstH) + ")");
  if (needH_) ch_ = precomputeCoeffs(srcW, dstW);
  if (needV_) cv_ = precomputeCoeffs(srcH, dstH);
}

double Resize::cost() const {
  // Multiply-adds, roughly: the horizontal pass over the rows read, then the vertical one.
  double h = needH_ ? double(srcH_) * dstW_ * 3 * ch_.ksize : 0;
  double v = needV_ ? double(dstH_) * dstW_ * 3 * cv_.ksize : 0;
  return h + v + double(dstW_) * dstH_ * 3;
}

void Resize::run(int y0, int y1, const RowSink& sink) const {
  if (y0 >= y1) return;
  const size_t srcStride = size_t(srcW_) * 3;
  const size_t rowLen = size_t(dstW_) * 3;
  std::vector<uint8_t> rowBuf(rowLen + 32);
  if (!needH_ && !needV_) {
    for (int yy = y0; yy < y1; ++yy) sink(yy, src_ + yy * srcStride);
    return;
  }
  if (!needV_) {
    // Horizontal only: output row yy is input row yy resampled.
    std::vector<uint8_t> T(size_t(srcW_) * kLanes + 8);
    std::vector<uint8_t> block(size_t(kBlock) * (rowLen + 4));
    for (int r0 = y0; r0 < y1; r0 += kBlock) {
      const int nrows = std::min(kBlock, y1 - r0);
      const uint8_t* in[kBlock];
      uint8_t* out[kBlock];
      for (int r = 0; r < kBlock; ++r) {
        in[r] = src_ + size_t(r0 + (r < nrows ? r : 0)) * srcStride;  // absent rows repeat the first; dropped
        out[r] = &block[size_t(r) * (rowLen + 4)];
      }
      transpose(in, srcW_, T.data());
      hblock(T.data(), ch_, dstW_, out, nrows);
      for (int r = 0; r < nrows; ++r) sink(r0 + r, out[r]);
    }
    return;
  }
  std::vector<const uint8_t*> taps(cv_.ksize);
  const uint8_t** tp = taps.data();
  if (!needH_) {
    for (int yy = y0; yy < y1; ++yy) {
      const int ymin = cv_.bounds[size_t(yy) * 2], n = cv_.bounds[size_t(yy) * 2 + 1];
      for (int t = 0; t < n; ++t) tp[t] = src_ + size_t(ymin + t) * srcStride;
      vrow(tp, n, &cv_.kk[size_t(yy) * cv_.ksize], rowLen, rowBuf.data());
      sink(yy, rowBuf.data());
    }
    return;
  }
  // Both passes: horizontally resampled rows go through a ring just deep enough for
  // the vertical taps (Pillow computes only the rows the vertical pass reads; so do we,
  // a block of 8 at a time).
  const int cap = cv_.ksize + kBlock;
  const size_t ringStride = rowLen + 4;
  std::vector<uint8_t> ring(size_t(cap) * ringStride);
  std::vector<uint8_t> T(size_t(srcW_) * kLanes + 8);
  int next = cv_.bounds[size_t(y0) * 2];  // next input row to resample horizontally
  for (int yy = y0; yy < y1; ++yy) {
    const int ymin = cv_.bounds[size_t(yy) * 2], n = cv_.bounds[size_t(yy) * 2 + 1];
    while (next < ymin + n) {
      const int nrows = std::min(kBlock, srcH_ - next);
      const uint8_t* in[kBlock];
      uint8_t* out[kBlock];
      for (int r = 0; r < kBlock; ++r) {
        const int row = next + (r < nrows ? r : 0);
        in[r] = src_ + size_t(row) * srcStride;
        out[r] = &ring[size_t(row % cap) * ringStride];
      }
      transpose(in, srcW_, T.data());
      hblock(T.data(), ch_, dstW_, out, nrows);
      next += nrows;
    }
    for (int t = 0; t < n; ++t) tp[t] = &ring[size_t((ymin + t) % cap) * ringStride];
    vrow(tp, n, &cv_.kk[size_t(yy) * cv_.ksize], rowLen, rowBuf.data());
    sink(yy, rowBuf.data());
  }
}

void runResizes(const std::vector<const Resize*>& jobs, const std::vector<RowSink>& sinks, int threads) {
  require(jobs.size() == sinks.size(), ErrorCode::Internal, "runResizes: one sink per resize");
  struct Chunk {
    size_t job;
    int y0, y1;
  };
  double total = 0;
  for (const Resize* j : jobs) total += j->cost();
  if (total < 2e6) threads = 1;  // not worth a thread
  threads = std::max(1, threads);
  // Chunks of about equal cost, several per thread, taken from a shared counter.
  std::vector<Chunk> chunks;
  const double target = total / (threads == 1 ? 1 : threads * 4);
  for (size_t i = 0; i < jobs.size(); ++i) {
    const int rows = jobs[i]->rows();
    int parts = int(std::ceil(jobs[i]->cost() / target));
    parts = std::max(1, std::min(parts, (rows + 15) / 16));
    for (int p = 0; p < parts; ++p) {
      const int a = int(int64_t(rows) * p / parts), b = int(int64_t(rows) * (p + 1) / parts);
      if (a < b) chunks.push_back({i, a, b});
    }
  }
  std::atomic<size_t> nextChunk{0};
  std::exception_ptr failure;
  std::mutex failureMutex;
  auto worker = [&]() {
    try {
      for (size_t c; (c = nextChunk.fetch_add(1)) < chunks.size();) {
        jobs[chunks[c].job]->run(chunks[c].y0, chunks[c].y1, sinks[chunks[c].job]);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(failureMutex);
      if (!failure) failure = std::current_exception();
    }
  };
  threads = std::min<int>(threads, int(chunks.size()));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  if (failure) std::rethrow_exception(failure);
}

void resizeBicubic(const uint8_t* src, int srcW, int srcH, uint8_t* dst, int dstW, int dstH, int threads) {
  Resize r(src, srcW, srcH, dstW, dstH);
  const size_t rowLen = size_t(dstW) * 3;
  runResizes({&r}, {[&](int yy, const uint8_t* row) { std::memcpy(dst + size_t(yy) * rowLen, row, rowLen); }}, threads);
}

}  // namespace ivl::image
