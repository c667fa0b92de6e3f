#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace ivl {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Buffers kept between calls: a decode step samples hundreds of rows of ~10⁵ scores, and
// allocating them per row cost as much as the work. One set per thread (rows are sampled
// on a pool).
struct Scratch {
  std::vector<float> tmp;       // top-k selection
  std::vector<float> e;         // [V] exp(s − max) by id; 0 for dropped tokens
  std::vector<uint64_t> keys;   // orderKey(s) << 32 | id, then sorted
  std::vector<uint64_t> keys2;  // radix sort's other half
  std::vector<float> es;        // exps in sorted order
  std::vector<int32_t> kept;    // after processLogits: the ids that may have probability > 0, ascending
  bool keptValid = false;       // kept is set (else every id may)
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// A uint32 whose unsigned order is the float order (−0 mapped to +0: they compare equal,
// and equal scores must stay in id order).
inline uint32_t orderKey(float x) {
  if (x == 0) x = 0;
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Sorts keys (orderKey << 32 | id) by their upper 32 bits, equal keys in the order they
// come (id order): LSD radix sort, 11 + 11 + 10 bits, each pass stable. The ids make every
// key distinct, so this is also the order std::stable_sort by score over iota gives.
void sortByScore(std::vector<uint64_t>& a, std::vector<uint64_t>& b) {
  constexpr int kShift[3] = {32, 43, 54};
  constexpr uint32_t kMask[3] = {0x7ff, 0x7ff, 0x3ff};
  const size_t n = a.size();
  if (n < 2) return;
  static thread_local uint32_t count[3][2048];
  std::memset(count, 0, sizeof(count));
  for (uint64_t k : a) {
    ++count[0][(k >> 32) & 0x7ff];
    ++count[1][(k >> 43) & 0x7ff];
    ++count[2][(k >> 54) & 0x3ff];
  }
  b.resize(n);
  for (int d = 0; d < 3; ++d) {
    uint32_t* c = count[d];
    const uint32_t buckets = kMask[d] + 1;
    // a digit every key shares: the pass would leave the order as it is
    if (c[(a[0] >> kShift[d]) & kMask[d]] == n) continue;
    uint32_t sum = 0;
    for (uint32_t j = 0; j < buckets; ++j) {
      const uint32_t t = c[j];
      c[j] = sum;
      sum += t;
    }
    for (uint64_t k : a) b[c[(k >> kShift[d]) & kMask[d]]++] = k;
    a.swap(b);
  }
}

inline int32_t idOf(uint64_t key) { return int32_t(uint32_t(key)); }

// Steps 4-5 for scores that hold a NaN or have no finite maximum, literally as the header
// describes them: every token takes part in the order and the sums. (With a NaN the order
// is unspecified, as a comparison sort's was.)
void topPSoftmaxLiteral(std::vector<float>& s, double topP, Scratch& w) {
  const int64_t V = int64_t(s.size());
  if (topP < 1.0) {
    w.keys.resize(size_t(V));
    for (int64_t i = 0; i < V; ++i) w.keys[size_t(i)] = uint64_t(orderKey(s[size_t(i)])) << 32 | uint32_t(i);
    sortByScore(w.keys, w.keys2);
    const float mx = s[size_t(idOf(w.keys.back()))];
    w.e.resize(size_t(V));  // exps in sorted order
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) {
      w.e[size_t(i)] = std::exp(s[size_t(idOf(w.keys[size_t(i)]))] - mx);
      sum += w.e[size_t(i)];
    }
    const float inv = float(1.0 / sum), cut = float(1.0 - topP);
    float cum = 0;
    for (int64_t i = 0; i < V - 1; ++i) {
      cum += w.e[size_t(i)] * inv;
      if (cum <= cut) s[size_t(idOf(w.keys[size_t(i)]))] = -INFINITY;
    }
  }
  float mx = -INFINITY;
  for (float x : s) mx = std::max(mx, x);
  double sum = 0;
  for (float& x : s) {
    x = std::exp(x - mx);
    sum += x;
  }
  const float inv = float(1.0 / sum);
  for (float& x : s) x *= inv;
}

// The softmax of step 5 over e[i] = exp(s[i] − max) (0 for dropped tokens). sparse: w.kept
// holds the ids whose e may be nonzero, ascending, and the sums run over them only: the same
// doubles as summing every e in id order (the others add +0), the same products.
void softmaxFromExps(std::vector<float>& s, const float* e, bool sparse, Scratch& w) {
  const size_t V = s.size();
  const int32_t* kept = w.kept.data();
  const size_t n = w.kept.size();
  double sum = 0;
  if (sparse) {
    for (size_t j = 0; j < n; ++j) sum += e[size_t(kept[j])];
  } else {
    for (size_t i = 0; i < V; ++i) sum += e[i];
  }
  const float inv = float(1.0 / sum);
  if (sparse) {
    std::fill(s.begin(), s.end(), 0.f);  // exp(−inf)·inv, and underflowed exps·inv: +0
    for (size_t j = 0; j < n; ++j) s[size_t(kept[j])] = e[size_t(kept[j])] * inv;
    w.keptValid = true;
  } else {
    for (size_t i = 0; i < V; ++i) s[i] = e[i] * inv;
    w.keptValid = false;
  }
}

// Steps 4-5 (top-p when topP < 1, then softmax) with the same arithmetic as the literal
// version, but:
//   - a radix sort instead of a comparison sort, of the finite scores only (−inf ones have
//     exp 0: they add nothing to either sum and top-p always drops them);
//   - one exp per distinct score, taken in sorted order (equal keys are adjacent; bf16
//     logits have a few thousand distinct values), reused by the softmax (same arguments);
//   - after top-p, the softmax and the draw over the surviving ids only when they are few
//     (the others' probabilities are +0, which add nothing to a double).
// Leaves w.kept = the ids whose probability may be nonzero, ascending, when it is set.
void topPSoftmax(std::vector<float>& s, double topP, Scratch& w) {
  const size_t V = s.size();
  float mx = -INFINITY;
  bool nan = false;
  for (float x : s) {
    mx = std::max(mx, x);
    nan |= x != x;
  }
  w.keptValid = false;
  if (nan || !std::isfinite(mx)) return topPSoftmaxLiteral(s, topP, w);
  w.e.resize(V);
  float* e = w.e.data();
  if (!(topP < 1.0)) {
    w.kept.resize(V);
    int32_t* kept = w.kept.data();
    size_t n = 0;
    for (size_t i = 0; i < V; ++i) {
      const float x = s[i] == -INFINITY ? 0.f : std::exp(s[i] - mx);
      e[i] = x;
      kept[n] = int32_t(i);
      n += x > 0;
    }
    w.kept.resize(n);
    return softmaxFromExps(s, e, n * 4 < V, w);
  }
  w.keys.resize(V);
  uint64_t* keys = w.keys.data();
  size_t n = 0;
  for (size_t i = 0; i < V; ++i) {
    keys[n] = uint64_t(orderKey(s[i])) << 32 | uint32_t(i);
    n += s[i] != -INFINITY;
  }
  w.keys.resize(n);
  sortByScore(w.keys, w.keys2);
  keys = w.keys.data();
  w.es.resize(n);
  float* es = w.es.data();  // exps in sorted order
  for (size_t j = 0; j < n;) {
    const uint32_t k = uint32_t(keys[j] >> 32);
    const float x = std::exp(s[size_t(idOf(keys[j]))] - mx);  // −0 and +0 share a key: both give exp(−mx)
    for (; j < n && uint32_t(keys[j] >> 32) == k; ++j) es[j] = x;
  }
  // The maximum (e = 1) is last, as in the full order; leading zero exps add +0 and are dropped.
  double sum = 0;
  for (size_t j = 0; j < n; ++j) sum += es[j];
  const float inv = float(1.0 / sum), cut = float(1.0 - topP);
  float cum = 0;
  // cum only grows, so the dropped tokens are a prefix of the order: stop at the first kept
  size_t dropped = 0;
  for (; dropped + 1 < n; ++dropped) {
    cum += es[dropped] * inv;
    if (!(cum <= cut)) break;
  }
  const size_t left = n - dropped;
  if (left * 4 < V) {  // usually a handful: their ids, ascending, and their exps
    w.kept.resize(left);
    int32_t* kept = w.kept.data();
    for (size_t j = 0; j < left; ++j) {
      kept[j] = idOf(keys[dropped + j]);
      e[size_t(kept[j])] = es[dropped + j];
    }
    std::sort(kept, kept + left);
    return softmaxFromExps(s, e, true, w);
  }
  std::fill(e, e + V, 0.f);  // −inf and dropped: exp(−inf) = 0
  for (size_t j = dropped; j < n; ++j) e[size_t(idOf(keys[j]))] = es[j];
  softmaxFromExps(s, e, false, w);
}

// The k-th largest score (0 < k < V), counting repeats, as nth_element finds it; a min-heap
// of the k largest so far when k is small (one comparison for most scores).
float kthLargest(const std::vector<float>& s, int64_t k, Scratch& w) {
  std::vector<float>& h = w.tmp;
  if (k > 1024) {
    h.assign(s.begin(), s.end());
    std::nth_element(h.begin(), h.begin() + (k - 1), h.end(), std::greater<float>());
    return h[size_t(k - 1)];
  }
  h.assign(s.begin(), s.begin() + k);
  std::make_heap(h.begin(), h.end(), std::greater<float>());
  for (size_t i = size_t(k); i < s.size(); ++i) {
    if (!(s[i] > h.front())) continue;
    std::pop_heap(h.begin(), h.end(), std::greater<float>());
    h.back() = s[i];
    std::push_heap(h.begin(), h.end(), std::greater<float>());
  }
  return h.front();
}
}  // namespace

Xoshiro256::Xoshiro256(uint64_t seed) {
  uint64_t x = seed;
  for (uint64_t& s : s_) s = splitmix64(x);
}

uint64_t Xoshiro256::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Xoshiro256::uniform() { return double(next() >> 11) * 0x1.0p-53; }

void processLogits(std::vector<float>& s, const SamplingParams& p, const std::vector<int32_t>& generated) {
  const int64_t V = int64_t(s.size());
  // 1. repetition penalty, once per distinct id
  applyRepetitionPenalty(s.data(), V, p.repetitionPenalty, generated);
  Scratch& w = scratch();
  w.keptValid = false;
  if (!p.doSample) return;

  // 2. temperature
  if (p.temperature != 1.0) {
    const float t = float(p.temperature);
    for (float& x : s) x = x / t;
  }
  // 3. top-k: threshold = k-th largest score; strictly smaller scores are dropped
  if (p.topK > 0 && p.topK < V) {
    const float kth = kthLargest(s, p.topK, w);
    for (float& x : s) {
      if (x < kth) x = -INFINITY;
    }
  }
  // 4. top-p over the scores sorted ascending (ties in id order), 5. softmax
  topPSoftmax(s, p.topP, w);
}

int32_t chooseToken(std::vector<float>& s, const SamplingParams& p, const std::vector<int32_t>& generated,
                    Xoshiro256& rng) {
  processLogits(s, p, generated);
  if (!p.doSample) return argmaxFirst(s.data(), int64_t(s.size()));
  // 6. inverse CDF in id order (over the ids that may be positive: the others add +0)
  const Scratch& w = scratch();
  if (w.keptValid) {
    double total = 0;
    for (int32_t i : w.kept) total += s[size_t(i)];
    const double u = rng.uniform() * total;
    double cum = 0;
    int32_t last = 0;
    for (int32_t i : w.kept) {
      if (s[size_t(i)] <= 0) continue;
      cum += s[size_t(i)];
      last = i;
      if (cum > u) return i;
    }
    return last;
  }
  double total = 0;
  for (float x : s) total += x;
  const double u = rng.uniform() * total;
  double cum = 0;
  int32_t last = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] <= 0) continue;
    cum += s[i];
    last = int32_t(i);
    if (cum > u) return int32_t(i);
  }
  return last;  // rounding: u landed past the last positive probability
}

}  // namespace ivl
