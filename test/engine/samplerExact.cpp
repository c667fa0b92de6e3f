// Checks runtime/sampler.cpp against the sampler as it was first written (the literal
// algorithm of sampler.h: a stable comparison sort of the whole vocabulary for top-p),
// kept here as the reference; and the CPU backend's Backend::greedyTokens /
// downloadRowsF32 against that reference's greedy choice (penalty, then std::max_element). Built and run by samplerExact.test.ts; with --bench it
// times both at real vocabulary sizes instead.
//   samplerExact            -> prints "ok <cases>" or the first mismatch, exit 1
//   samplerExact --bench    -> one JSON line per (V, params): µs per row before/after
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "cpu/cpu_backend.h"
#include "runtime/sampler.h"

namespace ref {
using ivl::SamplingParams;
using ivl::Xoshiro256;

void processLogits(std::vector<float>& s, const SamplingParams& p, const std::vector<int32_t>& generated) {
  const int64_t V = int64_t(s.size());
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
  if (p.temperature != 1.0) {
    const float t = float(p.temperature);
    for (float& x : s) x = x / t;
  }
  if (p.topK > 0 && p.topK < V) {
    std::vector<float> tmp(s);
    std::nth_element(tmp.begin(), tmp.begin() + (p.topK - 1), tmp.end(), std::greater<float>());
    const float kth = tmp[size_t(p.topK - 1)];
    for (float& x : s) {
      if (x < kth) x = -INFINITY;
    }
  }
  if (p.topP < 1.0) {
    std::vector<int32_t> order(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return s[size_t(a)] < s[size_t(b)]; });
    float mx = s[size_t(order.back())];
    std::vector<float> e(static_cast<size_t>(V));
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) {
      e[size_t(i)] = std::exp(s[size_t(order[size_t(i)])] - mx);
      sum += e[size_t(i)];
    }
    const float inv = float(1.0 / sum), cut = float(1.0 - p.topP);
    float cum = 0;
    for (int64_t i = 0; i < V - 1; ++i) {
      cum += e[size_t(i)] * inv;
      if (cum <= cut) s[size_t(order[size_t(i)])] = -INFINITY;
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

int32_t chooseToken(std::vector<float>& s, const SamplingParams& p, const std::vector<int32_t>& generated,
                    Xoshiro256& rng) {
  ref::processLogits(s, p, generated);
  if (!p.doSample) return int32_t(std::max_element(s.begin(), s.end()) - s.begin());
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
  return last;
}
}  // namespace ref

namespace {
using ivl::SamplingParams;

// Deterministic test data (not the sampler's PRNG: an independent LCG + Box-Muller).
struct Lcg {
  uint64_t x;
  double next() {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return double(x >> 11) * 0x1.0p-53;
  }
  double normal() {
    const double u = std::max(next(), 1e-300), v = next();
    return std::sqrt(-2 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};

float bf16Round(float x) {  // what a bf16 logit widens to (the CUDA backend's scores)
  uint32_t b;
  std::memcpy(&b, &x, 4);
  b = (b + 0x7fff + ((b >> 16) & 1)) & 0xffff0000u;
  std::memcpy(&x, &b, 4);
  return x;
}

// LLM-like logits: a wide normal bulk plus a few strong tokens.
std::vector<float> llmLogits(int64_t V, uint64_t seed, bool bf16) {
  Lcg g{seed};
  std::vector<float> s(static_cast<size_t>(V));
  for (float& x : s) x = float(g.normal() * 2.5 - 4);
  for (int k = 0; k < 20; ++k) s[size_t(g.next() * double(V))] = float(8 + g.next() * 10);
  if (bf16) {
    for (float& x : s) x = bf16Round(x);
  }
  return s;
}

int failures = 0, cases = 0;

bool sameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

void check(const std::string& name, const std::vector<float>& logits, const SamplingParams& p,
           const std::vector<int32_t>& generated, int draws = 20) {
  ++cases;
  std::vector<float> a(logits), b(logits);
  ref::processLogits(a, p, generated);
  ivl::processLogits(b, p, generated);
  // NaN-free inputs: the processed scores must be the same bits
  if (!sameBits(a, b)) {
    size_t i = 0;
    while (i < a.size() && std::memcmp(&a[i], &b[i], 4) == 0) ++i;
    std::printf("MISMATCH scores %s: V=%zu first diff at %zu: ref %.9g new %.9g\n", name.c_str(), a.size(), i,
                double(a[i]), double(b[i]));
    ++failures;
    return;
  }
  ivl::Xoshiro256 ra(p.seed), rb(p.seed);
  for (int d = 0; d < draws; ++d) {
    std::vector<float> x(logits), y(logits);
    const int32_t ta = ref::chooseToken(x, p, generated, ra), tb = ivl::chooseToken(y, p, generated, rb);
    if (ta != tb) {
      std::printf("MISMATCH token %s draw %d: ref %d new %d\n", name.c_str(), d, ta, tb);
      ++failures;
      return;
    }
  }
}

SamplingParams sp(double t, int64_t k, double topP, double pen = 1.0, uint64_t seed = 7) {
  SamplingParams p;
  p.doSample = true;
  p.temperature = t;
  p.topK = k;
  p.topP = topP;
  p.repetitionPenalty = pen;
  p.seed = seed;
  return p;
}

void runChecks() {
  const std::vector<SamplingParams> params = {
      sp(1, 0, 1),      sp(1, 0, 0.9),   sp(0.7, 0, 0.8),   sp(1, 0, 0.01),   sp(1, 0, 0.05),  sp(1, 0, 0.99),
      sp(1, 0, 0.999),  sp(1.3, 0, 0.5), sp(1, 1, 1),       sp(1, 1, 0.9),    sp(1, 50, 0.9),  sp(0.8, 10, 0.3),
      sp(1, 0, 0.0),    sp(1, 0, 1e-9),  sp(1, 5, 1, 1.2),  sp(1, 0, 0.9, 1.3), sp(1, 0, 0.7, 0.8),
  };
  const std::vector<int32_t> hist = {3, 7, 7, 11, 40, 63, 5000, -1, 1 << 30};
  // random and LLM-like scores at several sizes, fp32 and bf16-valued
  for (int64_t V : {2, 3, 17, 64, 1000, 4099, 92553}) {
    for (uint64_t seed : {1ull, 2ull, 3ull}) {
      for (bool bf16 : {false, true}) {
        const std::vector<float> l = llmLogits(V, seed * 7919 + uint64_t(V), bf16);
        for (size_t j = 0; j < params.size(); ++j) {
          SamplingParams p = params[j];
          if (p.topK > V) p.topK = V;
          check("llm V=" + std::to_string(V) + " seed " + std::to_string(seed) + (bf16 ? " bf16" : "") + " p#" +
                    std::to_string(j),
                l, p, p.repetitionPenalty != 1.0 ? hist : std::vector<int32_t>{}, V > 5000 ? 3 : 20);
        }
        SamplingParams kV = sp(1, V, 0.9);  // top-k V: off
        check("top-k V", l, kV, {});
      }
    }
  }
  // adversarial: ties everywhere, all equal, ±0, −inf, +inf, a lone finite score, flat, huge spreads
  const int64_t V = 1000;
  std::vector<std::pair<std::string, std::vector<float>>> adv;
  adv.push_back({"all equal", std::vector<float>(static_cast<size_t>(V), 1.5f)});
  adv.push_back({"all zero", std::vector<float>(static_cast<size_t>(V), 0.f)});
  {
    std::vector<float> s(static_cast<size_t>(V));
    for (int64_t i = 0; i < V; ++i) s[size_t(i)] = (i % 2) ? -0.f : 0.f;
    adv.push_back({"±0", s});
  }
  {
    std::vector<float> s(static_cast<size_t>(V));
    for (int64_t i = 0; i < V; ++i) s[size_t(i)] = float(i % 4);
    adv.push_back({"4 levels of ties", s});
  }
  {
    std::vector<float> s(static_cast<size_t>(V));
    Lcg g{99};
    for (float& x : s) x = float(int(g.next() * 8)) * 0.25f;
    adv.push_back({"random ties", s});
  }
  {
    std::vector<float> s(static_cast<size_t>(V), -INFINITY);
    s[10] = 2;
    s[500] = 2;
    s[700] = 1;
    adv.push_back({"-inf but three", s});
  }
  adv.push_back({"all -inf", std::vector<float>(static_cast<size_t>(V), -INFINITY)});
  {
    std::vector<float> s(static_cast<size_t>(V), 0.5f);
    s[3] = INFINITY;
    adv.push_back({"+inf", s});
  }
  {
    std::vector<float> s(static_cast<size_t>(V), 0.5f);
    s[3] = INFINITY;
    s[900] = INFINITY;
    s[4] = -INFINITY;
    adv.push_back({"two +inf", s});
  }
  {
    std::vector<float> s(static_cast<size_t>(V));
    Lcg g{5};
    for (float& x : s) x = float(g.normal() * 60);  // many exps underflow to 0
    adv.push_back({"spread 60", s});
  }
  {
    std::vector<float> s(static_cast<size_t>(V));
    Lcg g{6};
    for (float& x : s) x = float(g.next() * 1e-6);  // nearly flat
    adv.push_back({"flat", s});
  }
  {
    std::vector<float> s(static_cast<size_t>(V));
    Lcg g{8};
    for (float& x : s) x = float(-g.next() * 200 - 1e30 * (g.next() < 0.1));
    adv.push_back({"huge negatives", s});
  }
  {
    std::vector<float> s(static_cast<size_t>(V), -3.f);
    s[0] = 50;
    adv.push_back({"one dominant", s});
  }
  for (auto& [name, s] : adv) {
    for (size_t j = 0; j < params.size(); ++j) check("adv " + name + " p#" + std::to_string(j), s, params[j], params[j].repetitionPenalty != 1.0 ? hist : std::vector<int32_t>{});
    check("adv " + name + " top-k V", s, sp(1, V, 0.95), {});
    SamplingParams g;  // greedy
    check("adv " + name + " greedy", s, g, {});
    g.repetitionPenalty = 1.5;
    check("adv " + name + " greedy penalty", s, g, {0, 3, 3, 999});
  }
  // greedy argmaxFirst == std::max_element on penalized scores
  for (int64_t V2 : {1, 5, 92553}) {
    const std::vector<float> l = llmLogits(V2, 11, true);
    SamplingParams g;
    check("greedy V=" + std::to_string(V2), l, g, {});
  }
}

// Backend::greedyTokens on the CPU backend (the host default every backend falls back to):
// rows in any order and subset, penalties with repeats and ids out of range, ties, NaN, −inf.
void runGreedyChecks() {
  ivl::cpu::CpuBackend be(1);
  for (int64_t V : {1, 7, 4099, 92553}) {
    const int64_t R = 9;
    std::vector<float> host(size_t(R * V));
    for (int64_t r = 0; r < R; ++r) {
      std::vector<float> l = llmLogits(V, uint64_t(r * 31 + V), r % 2 == 0);
      std::copy(l.begin(), l.end(), host.begin() + r * V);
    }
    float* row5 = host.data() + 5 * V;  // ties: the maximum three times
    const float top = *std::max_element(row5, row5 + V) + 1;
    for (int64_t i : {V - 1, V / 2, V / 3}) row5[size_t(i)] = top;
    float* row6 = host.data() + 6 * V;  // all −inf
    std::fill(row6, row6 + V, -INFINITY);
    float* row7 = host.data() + 7 * V;  // NaN inside, then at element 0
    row7[size_t(V / 2)] = NAN;
    float* row8 = host.data() + 8 * V;
    row8[0] = NAN;
    ivl::Tensor t = be.uploadF32(host.data(), {R, V});
    const std::vector<int32_t> hist = {0, 1, 1, 2, int32_t(V / 2), int32_t(V - 1), int32_t(V - 1), -5, int32_t(V + 3)};
    std::vector<ivl::Backend::GreedyRow> rows;
    for (int64_t r : {3, 0, 8, 5, 1, 6, 7, 2, 4, 5}) {
      ivl::Backend::GreedyRow g;
      g.row = r;
      g.penalty = r % 3 == 0 ? 1.0 : (r % 3 == 1 ? 1.3 : 0.7);
      g.history = r == 4 ? nullptr : &hist;
      rows.push_back(g);
    }
    std::vector<int32_t> got(rows.size());
    be.greedyTokens(t, rows, got.data());
    for (size_t i = 0; i < rows.size(); ++i) {
      ++cases;
      std::vector<float> s(host.begin() + rows[i].row * V, host.begin() + (rows[i].row + 1) * V);
      SamplingParams p;  // greedy
      p.repetitionPenalty = rows[i].history ? rows[i].penalty : 1.0;
      ivl::Xoshiro256 rng(0);
      const int32_t want = ref::chooseToken(s, p, rows[i].history ? hist : std::vector<int32_t>{}, rng);
      if (got[i] != want) {
        std::printf("MISMATCH greedyTokens V=%lld row %lld: got %d want %d\n", (long long)V, (long long)rows[i].row,
                    got[i], want);
        ++failures;
      }
    }
    // downloadRowsF32: a subset in another order, bit for bit
    ++cases;
    const std::vector<int64_t> pick = {4, 0, 4, 8};
    std::vector<float> out(pick.size() * size_t(V));
    be.downloadRowsF32(t, pick, out.data());
    for (size_t i = 0; i < pick.size(); ++i) {
      if (std::memcmp(out.data() + i * size_t(V), host.data() + pick[i] * V, size_t(V) * 4) != 0) {
        std::printf("MISMATCH downloadRowsF32 V=%lld row %lld\n", (long long)V, (long long)pick[i]);
        ++failures;
        break;
      }
    }
  }
}

double usPerRow(bool newImpl, const std::vector<std::vector<float>>& rows, const SamplingParams& p) {
  ivl::Xoshiro256 rng(1);
  std::vector<float> s;
  std::vector<int32_t> gen = {1, 2, 3};
  int sink = 0;
  const auto t0 = std::chrono::steady_clock::now();
  int n = 0;
  do {
    for (const auto& r : rows) {
      s.assign(r.begin(), r.end());
      sink += newImpl ? ivl::chooseToken(s, p, gen, rng) : ref::chooseToken(s, p, gen, rng);
      ++n;
    }
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 0.3);
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / n;
  if (sink == -1) std::printf("!");
  return us;
}

void bench() {
  struct Case {
    const char* name;
    SamplingParams p;
  };
  SamplingParams greedy;
  const Case cs[] = {{"greedy", greedy},
                     {"T=1", sp(1, 0, 1)},
                     {"top-p 0.9", sp(1, 0, 0.9)},
                     {"T=0.7 top-p 0.8", sp(0.7, 0, 0.8)},
                     {"top-k 50 top-p 0.9", sp(1, 50, 0.9)},
                     {"top-p 0.99 + penalty 1.1", sp(1, 0, 0.99, 1.1)}};
  for (int64_t V : {92553, 151655}) {
    for (bool bf16 : {true, false}) {
      std::vector<std::vector<float>> rows;
      for (uint64_t s = 0; s < 8; ++s) rows.push_back(llmLogits(V, s + 100, bf16));
      for (const Case& c : cs) {
        const double before = usPerRow(false, rows, c.p), after = usPerRow(true, rows, c.p);
        std::printf("{\"V\":%lld,\"logits\":\"%s\",\"params\":\"%s\",\"usPerRowBefore\":%.1f,\"usPerRowAfter\":%.1f,"
                    "\"speedup\":%.2f}\n",
                    (long long)V, bf16 ? "bf16-valued" : "fp32", c.name, before, after, before / after);
      }
    }
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) {
    bench();
    return 0;
  }
  runChecks();
  runGreedyChecks();
  if (failures) {
    std::printf("FAILED %d of %d cases\n", failures, cases);
    return 1;
  }
  std::printf("ok %d\n", cases);
  return 0;
}
