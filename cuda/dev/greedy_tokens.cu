// CudaBackend::greedyTokens / downloadRowsF32 / downloadStaging (cuda/sampling.cu) against
// the host sampler's greedy choice on the same numbers: logits are bf16 values, uploaded
// exactly, and the reference is the sampler as first written (distinct history ids
// penalized in fp32, then std::max_element). Every id must be equal: no tolerance.
// Then timings of a decode step's logits handling at R = 128: the old full fp32 download
// into pageable memory, the same into page-locked memory, and greedyTokens.
//
// Build and run on the GPU machine: cuda/dev/greedy_tokens.sh [--json FILE]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_backend.h"
#include "runtime/bf16.h"

using namespace ivl;
using ivl::cuda::CudaBackend;

namespace {

float roundBf16(float v) { return bf16ToF32(f32ToBf16(v)); }

// The greedy choice as runtime/sampler.cpp first wrote it.
int32_t reference(std::vector<float> s, double penalty, const std::vector<int32_t>* history) {
  const int64_t V = int64_t(s.size());
  if (penalty != 1.0 && history) {
    const float pen = float(penalty);
    std::vector<int32_t> ids(*history);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (int32_t id : ids) {
      if (id < 0 || id >= V) continue;
      float& x = s[size_t(id)];
      x = x < 0 ? x * pen : x / pen;
    }
  }
  return int32_t(std::max_element(s.begin(), s.end()) - s.begin());
}

int failures = 0, cases = 0;
FILE* json = nullptr;

// LLM-like rows (bf16 values): a normal bulk and a few strong tokens, plus special rows.
std::vector<float> makeLogits(int64_t R, int64_t V, std::mt19937& rng) {
  std::normal_distribution<float> bulk(-4.f, 2.5f);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<float> h(size_t(R * V));
  for (float& x : h) x = roundBf16(bulk(rng));
  for (int64_t r = 0; r < R; ++r) {
    float* row = h.data() + r * V;
    for (int k = 0; k < 10; ++k) row[size_t(u(rng) * float(V)) % size_t(V)] = roundBf16(8 + 10 * u(rng));
    const float top = *std::max_element(row, row + V);
    switch (r % 8) {
      case 1:  // the maximum three times: the first wins
        for (int64_t i : {V - 1, V / 2, V / 3}) row[size_t(i)] = roundBf16(top + 1);
        break;
      case 2:  // all −inf
        std::fill(row, row + V, -INFINITY);
        break;
      case 3:  // NaN inside (never chosen)
        row[size_t(V / 2)] = NAN;
        break;
      case 4:  // NaN at element 0 (std::max_element returns 0)
        row[0] = NAN;
        break;
      case 5:  // ±0 maxima in a row of negatives
        std::fill(row, row + V, -1.f);
        row[size_t(V - 1)] = 0.f;
        row[size_t(V / 2)] = -0.f;
        break;
      case 6:  // +inf
        row[size_t(V / 3)] = INFINITY;
        break;
      case 7:  // all equal
        std::fill(row, row + V, 0.5f);
        break;
      default:
        break;
    }
  }
  return h;
}

void checkShape(CudaBackend& gpu, int64_t R, int64_t V, std::mt19937& rng) {
  const std::vector<float> host = makeLogits(R, V, rng);
  Tensor t = gpu.uploadF32(host.data(), {R, V});
  // histories: repeats, ids out of range, the current maximum, a long one
  std::uniform_int_distribution<int32_t> id(0, int32_t(V - 1));
  std::vector<std::vector<int32_t>> hist(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) {
    auto& h = hist[size_t(r)];
    const float* row = host.data() + r * V;
    h.push_back(int32_t(std::max_element(row, row + V) - row));
    h.push_back(h.back());
    h.push_back(0);
    h.push_back(-3);
    h.push_back(int32_t(V + 5));
    const int n = r % 3 == 0 ? 600 : 40;
    for (int k = 0; k < n; ++k) h.push_back(id(rng));
  }
  const double pens[] = {1.0, 1.3, 0.7, 1.05, 1.0000000001};
  for (int variant = 0; variant < 3; ++variant) {
    std::vector<Backend::GreedyRow> rows;
    if (variant == 0) {
      for (int64_t r = 0; r < R; ++r) rows.push_back({r, 1.0, nullptr});  // the common case
    } else {
      std::vector<int64_t> order(static_cast<size_t>(R));
      for (int64_t r = 0; r < R; ++r) order[size_t(r)] = r;
      std::shuffle(order.begin(), order.end(), rng);
      if (variant == 2) order.resize(size_t((R + 1) / 2));  // a subset (the others are sampled)
      for (int64_t r : order) rows.push_back({r, pens[size_t(r) % 5], &hist[size_t(r)]});
    }
    std::vector<int32_t> got(rows.size(), -7);
    gpu.greedyTokens(t, rows, got.data());
    int bad = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const int64_t r = rows[i].row;
      const std::vector<float> s(host.begin() + r * V, host.begin() + (r + 1) * V);
      const int32_t want = reference(s, rows[i].penalty, rows[i].history);
      if (got[i] != want) {
        if (bad++ < 5) {
          std::printf("  MISMATCH R=%lld V=%lld variant %d row %lld (kind %lld, penalty %g): got %d want %d\n",
                      (long long)R, (long long)V, variant, (long long)r, (long long)(r % 8), rows[i].penalty, got[i],
                      want);
        }
      }
    }
    ++cases;
    if (bad) ++failures;
    std::printf("greedyTokens R=%-4lld V=%-6lld variant %d: %s\n", (long long)R, (long long)V, variant,
                bad ? "FAIL" : "ok");
  }
  // downloadRowsF32 (a gather) and into page-locked memory: bit for bit
  std::vector<int64_t> pick;
  for (int64_t r = R - 1; r >= 0; r -= 2) pick.push_back(r);
  float* pinned = gpu.downloadStaging(pick.size() * size_t(V));
  gpu.downloadRowsF32(t, pick, pinned);
  bool same = true;  // same bits (NaN: a NaN; bf16 keeps no payload)
  for (size_t i = 0; i < pick.size() && same; ++i) {
    const float* got = pinned + i * size_t(V);
    const float* want = host.data() + pick[i] * V;
    for (int64_t j = 0; j < V && same; ++j) {
      same = std::isnan(want[j]) ? std::isnan(got[j]) : std::memcmp(got + j, want + j, 4) == 0;
    }
  }
  ++cases;
  if (!same) ++failures;
  std::printf("downloadRowsF32 R=%-4lld V=%-6lld into staging: %s\n", (long long)R, (long long)V, same ? "ok" : "FAIL");
}

template <class F>
double msPerCall(CudaBackend& gpu, F&& f, int reps = 50) {
  f();
  gpu.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
  gpu.synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
}

void timeStep(CudaBackend& gpu, int64_t R, int64_t V, std::mt19937& rng) {
  std::vector<float> host = makeLogits(R, V, rng);
  Tensor t = gpu.uploadF32(host.data(), {R, V});
  std::vector<float> pageable(size_t(R * V));
  std::vector<Backend::GreedyRow> rows;
  std::vector<int32_t> hist = {1, 2, 3, 5, 8, 13, 21, 34};
  for (int64_t r = 0; r < R; ++r) rows.push_back({r, 1.0, nullptr});
  std::vector<Backend::GreedyRow> penRows;
  for (int64_t r = 0; r < R; ++r) penRows.push_back({r, 1.1, &hist});
  std::vector<int32_t> ids(static_cast<size_t>(R));
  const double full = msPerCall(gpu, [&] { gpu.downloadF32(t, pageable.data()); });
  float* pinned = gpu.downloadStaging(size_t(R * V));
  const double fullPinned = msPerCall(gpu, [&] { gpu.downloadF32(t, pinned); });
  const double greedy = msPerCall(gpu, [&] { gpu.greedyTokens(t, rows, ids.data()); });
  const double greedyPen = msPerCall(gpu, [&] { gpu.greedyTokens(t, penRows, ids.data()); });
  std::printf("R=%lld V=%lld: full fp32 download pageable %.3f ms, page-locked %.3f ms; greedyTokens %.3f ms "
              "(with penalty %.3f ms)\n",
              (long long)R, (long long)V, full, fullPinned, greedy, greedyPen);
  if (json) {
    std::fprintf(json,
                 "{\"R\":%lld,\"V\":%lld,\"fullDownloadPageableMs\":%.4f,\"fullDownloadPinnedMs\":%.4f,"
                 "\"greedyTokensMs\":%.4f,\"greedyTokensPenaltyMs\":%.4f}\n",
                 (long long)R, (long long)V, full, fullPinned, greedy, greedyPen);
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) json = std::fopen(argv[++i], "w");
  }
  try {
    CudaBackend gpu;
    std::mt19937 rng(20261129);
    for (int64_t V : {1, 7, 8, 9, 32064, 92553, 128256, 151655}) {
      for (int64_t R : {1, 3, 8, 33, 128}) {
        if (V == 1 && R > 8) continue;
        checkShape(gpu, R, V, rng);
      }
    }
    for (int64_t V : {92553, 151655}) {
      for (int64_t R : {32, 128}) timeStep(gpu, R, V, rng);
    }
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 2;
  }
  if (json) std::fclose(json);
  std::printf("%s: %d of %d cases failed\n", failures ? "FAILED" : "ok", failures, cases);
  return failures ? 1 : 0;
}
