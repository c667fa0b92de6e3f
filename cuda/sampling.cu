// The sampling-side ops of CudaBackend: greedy tokens chosen on the device, so a decode step
// of greedy rows downloads R ids instead of R × V fp32 logits, and the page-locked buffer
// sampled rows' logits are downloaded into.
//
// greedyTokens must pick exactly what the host sampler picks from the downloaded row
// (runtime/sampler.h): the BF16 logit widened to fp32 (exact), the repetition penalty
// s < 0 ? s·p : s / p in fp32 with IEEE rounding (__fmul_rn / __fdiv_rn: immune to
// --use_fast_math) on each distinct history id, then std::max_element's choice: the first
// index of the largest value, NaNs never chosen (std::max_element keeps element 0 when it
// is a NaN: so do we).
#include <algorithm>
#include <climits>

#include "cuda_backend_impl.h"

namespace ivl::cuda {

namespace {

constexpr int kGreedyThreads = 512;
constexpr size_t kMaxMarkBytes = 48 << 10;  // the penalized-id bitmap lives in shared memory

// (v, i) before (bv, bi) in the greedy order: larger value, then lower id. NaN never wins.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

__device__ __forceinline__ void warpBest(float& bv, int& bi) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, off);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, off);
    if (better(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
}

// One block per listed row: out[b] = greedy token of logits[rows[b], 0:V].
// Penalized ids of row b: hist[histBegin[b] : histBegin[b + 1]] (repeats allowed, ids outside
// [0, V) ignored), with penalty pens[b]; marked in a shared bitmap so each is penalized once.
__global__ void __launch_bounds__(kGreedyThreads)
    greedyKernel(const bf16* __restrict__ logits, int V, const int64_t* __restrict__ rows,
                 const float* __restrict__ pens, const int32_t* __restrict__ histBegin,
                 const int32_t* __restrict__ hist, int32_t* __restrict__ out) {
  extern __shared__ uint32_t marked[];  // [(V + 31) / 32], only when some row has a penalty
  __shared__ float warpV[kGreedyThreads / 32];
  __shared__ int warpI[kGreedyThreads / 32];
  const int b = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const bf16* x = logits + rows[b] * int64_t(V);
  const float pen = pens[b];
  const int h0 = histBegin[b], h1 = histBegin[b + 1];
  const bool usePen = pen != 1.f && h1 > h0;  // p = 1 divides by 1: no change
  if (usePen) {
    const int words = (V + 31) / 32;
    for (int w = tid; w < words; w += kGreedyThreads) marked[w] = 0;
    __syncthreads();
    for (int j = h0 + tid; j < h1; j += kGreedyThreads) {
      const int id = hist[j];
      if (id >= 0 && id < V) atomicOr(&marked[id >> 5], 1u << (id & 31));
    }
    __syncthreads();
  }
  auto score = [&](float v, int i) {
    if (usePen && ((marked[i >> 5] >> (i & 31)) & 1u)) v = v < 0.f ? __fmul_rn(v, pen) : __fdiv_rn(v, pen);
    return v;
  };
  float bv = -INFINITY;
  int bi = INT_MAX;
  auto consider = [&](float v, int i) {
    v = score(v, i);
    if (better(v, i, bv, bi)) {
      bv = v;
      bi = i;
    }
  };
  // Rows start wherever V puts them (V is odd for InternLM2): scalar head up to a 16-byte
  // boundary, then 8 BF16 per load, then a scalar tail.
  int head = int(((16 - (reinterpret_cast<uintptr_t>(x) & 15)) & 15) / sizeof(bf16));
  if (head > V) head = V;
  for (int i = tid; i < head; i += kGreedyThreads) consider(__bfloat162float(x[i]), i);
  const int nvec = (V - head) / 8;
  const uint4* xv = reinterpret_cast<const uint4*>(x + head);
  for (int k = tid; k < nvec; k += kGreedyThreads) {
    const uint4 u = __ldcs(xv + k);  // read once: do not keep it in cache
    const __nv_bfloat162* p = reinterpret_cast<const __nv_bfloat162*>(&u);
    const int base = head + k * 8;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = __bfloat1622float2(p[j]);
      consider(f.x, base + 2 * j);
      consider(f.y, base + 2 * j + 1);
    }
  }
  for (int i = head + nvec * 8 + tid; i < V; i += kGreedyThreads) consider(__bfloat162float(x[i]), i);

  warpBest(bv, bi);
  if (lane == 0) {
    warpV[warp] = bv;
    warpI[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    constexpr int kWarps = kGreedyThreads / 32;
    bv = lane < kWarps ? warpV[lane] : -INFINITY;
    bi = lane < kWarps ? warpI[lane] : INT_MAX;
    warpBest(bv, bi);
    if (lane == 0) {
      const float first = score(__bfloat162float(x[0]), 0);
      out[b] = (first != first || bi == INT_MAX) ? 0 : bi;  // std::max_element's NaN at element 0
    }
  }
}

}  // namespace

float* CudaBackend::downloadStaging(size_t floats) {
  return impl_->op([&]() -> float* {
    PinnedHost& h = impl_->downloadHost;
    const size_t bytes = floats * sizeof(float);
    if (h.bytes < bytes) {
      const size_t cap = std::max(bytes, h.bytes + h.bytes / 2);  // amortized growth
      // nothing queued may still be writing into it: downloads synchronize before returning
      if (h.ptr) IVL_CUDA_CHECK(cudaFreeHost(h.ptr));
      h.ptr = nullptr;
      h.bytes = 0;
      const cudaError_t err = cudaMallocHost(&h.ptr, cap);
      if (err == cudaErrorMemoryAllocation) {  // no page-locked memory to spare: pageable will do
        cudaGetLastError();
        h.ptr = nullptr;
        return nullptr;
      }
      IVL_CUDA_CHECK(err);
      h.bytes = cap;
    }
    return static_cast<float*>(h.ptr);
  });
}

void CudaBackend::greedyTokens(const Tensor& logits, const std::vector<GreedyRow>& rows, int32_t* out) {
  if (rows.empty()) return;
  const int64_t R = logits.rows(), V = R > 0 ? logits.numel() / R : 0;
  const size_t markBytes = size_t((V + 31) / 32) * sizeof(uint32_t);
  // Logits this kernel does not read (an F32 head, a huge vocabulary): the host path.
  if (!logits.defined() || logits.dtype() != DType::BF16 || V <= 0 || V > INT_MAX / 2 || markBytes > kMaxMarkBytes) {
    return Backend::greedyTokens(logits, rows, out);
  }
  impl_->op([&] {
    const size_t n = rows.size();
    std::vector<int64_t> rowIdx(n);
    std::vector<float> pens(n);
    std::vector<int32_t> begin(n + 1, 0), hist;
    for (size_t i = 0; i < n; ++i) {
      const GreedyRow& g = rows[i];
      need(g.row >= 0 && g.row < R, "greedyTokens: row " + std::to_string(g.row) + " of " + std::to_string(R));
      rowIdx[i] = g.row;
      pens[i] = float(g.penalty);  // the host sampler's float(repetitionPenalty)
      if (pens[i] != 1.f && g.history) hist.insert(hist.end(), g.history->begin(), g.history->end());
      need(hist.size() < size_t(INT_MAX), "greedyTokens: history too long");
      begin[i + 1] = int32_t(hist.size());
    }
    PackedUpload meta(impl_->ctx->allocator, impl_->staging, impl_->stream,
                      {{rowIdx.data(), n * sizeof(int64_t)},
                       {pens.data(), n * sizeof(float)},
                       {begin.data(), (n + 1) * sizeof(int32_t)},
                       {hist.data(), hist.size() * sizeof(int32_t)}});
    ScratchBlock dOut(impl_->ctx->allocator, n * sizeof(int32_t));
    greedyKernel<<<unsigned(n), kGreedyThreads, hist.empty() ? 0 : markBytes, impl_->stream>>>(
        logits.ptr<bf16>(), int(V), meta.at<int64_t>(0), meta.at<float>(1), meta.at<int32_t>(2), meta.at<int32_t>(3),
        dOut.as<int32_t>());
    IVL_CUDA_CHECK(cudaGetLastError());
    IVL_CUDA_CHECK(cudaMemcpyAsync(out, dOut.get(), n * sizeof(int32_t), cudaMemcpyDeviceToHost, impl_->stream));
    IVL_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
  });
}

}  // namespace ivl::cuda
