#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ivl {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
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
  if (p.repetitionPenalty != 1.0) {
    const float pen = float(p.repetitionPenalty);
    std::vector<int32_t> ids(generated);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (int32_t id : ids) {
      if (id < 0 || id >= V) continue;
      float& x = s[size_t(id)];
      x = x < 0 ? x * pen : x / pen;
    }
  }
  if (!p.doSample) return;

  // 2. temperature
  if (p.temperature != 1.0) {
    const float t = float(p.temperature);
    for (float& x : s) x = x / t;
  }
  // 3. top-k: threshold = k-th largest score; strictly smaller scores are dropped
  if (p.topK > 0 && p.topK < V) {
    std::vector<float> tmp(s);
    std::nth_element(tmp.begin(), tmp.begin() + (p.topK - 1), tmp.end(), std::greater<float>());
    const float kth = tmp[size_t(p.topK - 1)];
    for (float& x : s) {
      if (x < kth) x = -INFINITY;
    }
  }
  // 4. top-p over the scores sorted ascending (ties in id order)
  if (p.topP < 1.0) {
    std::vector<int32_t> order(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return s[size_t(a)] < s[size_t(b)]; });
    float mx = s[size_t(order.back())];
    std::vector<float> e(static_cast<size_t>(V));  // exps in sorted order
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) {
      e[size_t(i)] = std::exp(s[size_t(order[size_t(i)])] - mx);
      sum += e[size_t(i)];
    }
    const float inv = float(1.0 / sum), cut = float(1.0 - p.topP);
    float cum = 0;
    for (int64_t i = 0; i < V - 1; ++i) {  // the largest (last) is always kept
      cum += e[size_t(i)] * inv;
      if (cum <= cut) s[size_t(order[size_t(i)])] = -INFINITY;
    }
  }
  // 5. softmax
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

int32_t chooseToken(std::vector<float>& s, const SamplingParams& p, const std::vector<int32_t>& generated,
                    Xoshiro256& rng) {
  processLogits(s, p, generated);
  if (!p.doSample) {
    return int32_t(std::max_element(s.begin(), s.end()) - s.begin());  // first maximum
  }
  // 6. inverse CDF in id order
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
