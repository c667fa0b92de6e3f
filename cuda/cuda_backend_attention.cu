// CudaBackend::attention (ViT, non-causal) and ::pagedAttention (decoder, causal over the
// paged cache), and the generic kernel both fall back to.
//
// Dispatch:
//   attention       denseAttention (paged_attention.h) when head_dim is 64/96/128 and the
//                   rows are 16-byte aligned; else the generic kernel.
//   pagedAttention  the tuned kernels assume every sequence's queries are the LAST qo_len
//                   keys of its cache; the interface defines causality by position (query at
//                   position p sees keys 0..p). The host checks that the two agree
//                   (positions[qo_indptr[b] + i] == kv_len(b) − qo_len(b) + i, true for every
//                   batch the runtime builds); then pagedDecode when every sequence has exactly
//                   one query (and the GQA group is <= 16), else pagedPrefill. Any other head_dim,
//                   alignment or position pattern takes the generic kernel.
//
// Generic kernel: one block of 128 threads per (query token, head); fp32 online softmax
// over chunks of 128 keys (each thread scores one key of the chunk, then the block
// accumulates P·V with each thread owning head dims d = tid, tid + 128, ...). Any head_dim
// up to 512, any GQA group. Simple and correct, not fast: the oracle for the tuned kernels
// and the path for the tiny fixtures (head_dim 16).
#include <algorithm>
#include <cmath>

#include "attention_mma.h"
#include "cuda_backend_impl.h"
#include "norm.h"
#include "paged_attention.h"

namespace ivl::cuda {

namespace {

constexpr int kGenThreads = 128;
constexpr int kGenMaxD = 512;
constexpr int kGenDimsPerThread = kGenMaxD / kGenThreads;

struct GenericParams {
  const bf16* q;
  int64_t qStride;  // elements between query tokens
  const bf16* k;
  const bf16* v;
  int64_t kvStride;  // dense: elements between key tokens (k and v alike)
  bf16* out;         // [tokens, nHeads·D]
  int nHeads, nKvHeads, D;
  float scale;
  // dense: keys of query t are tokens (t / seqLen)·seqLen .. +seqLen
  int64_t seqLen;
  // paged: query t belongs to seqOf[t] and sees positions 0..positions[t]
  const int32_t* seqOf;
  const int32_t* positions;
  const int32_t* kvIndptr;
  const int32_t* kvIndices;
  int pageSize;
};

using attn::warpMax;
using attn::warpSum;

template <bool PAGED>
__global__ void __launch_bounds__(kGenThreads) genericAttentionKernel(GenericParams p) {
  __shared__ float qs[kGenMaxD];
  __shared__ float probs[kGenThreads];
  __shared__ int64_t rowOff[kGenThreads];  // element offset of each chunk key's (token, kv head) row
  __shared__ float redMax[kGenThreads / 32], redSum[kGenThreads / 32];

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int64_t t = blockIdx.x;
  const int h = blockIdx.y;
  const int D = p.D;
  const int kvh = h / (p.nHeads / p.nKvHeads);

  int64_t len, keyBase = 0;
  const int32_t* pages = nullptr;
  if constexpr (PAGED) {
    const int b = p.seqOf[t];
    len = int64_t(p.positions[t]) + 1;
    pages = p.kvIndices + p.kvIndptr[b];
  } else {
    len = p.seqLen;
    keyBase = (t / p.seqLen) * p.seqLen;
  }

  for (int d = tid; d < D; d += kGenThreads) qs[d] = __bfloat162float(p.q[t * p.qStride + int64_t(h) * D + d]) * p.scale;
  __syncthreads();

  float m = -INFINITY, l = 0.0f;
  float acc[kGenDimsPerThread];
#pragma unroll
  for (int i = 0; i < kGenDimsPerThread; ++i) acc[i] = 0.0f;

  for (int64_t j0 = 0; j0 < len; j0 += kGenThreads) {
    const int64_t j = j0 + tid;
    float s = -INFINITY;
    if (j < len) {
      int64_t off;
      if constexpr (PAGED) {
        const int64_t slot = int64_t(pages[j / p.pageSize]) * p.pageSize + j % p.pageSize;
        off = (slot * p.nKvHeads + kvh) * int64_t(D);
      } else {
        off = (keyBase + j) * p.kvStride + int64_t(kvh) * D;
      }
      rowOff[tid] = off;
      const bf16* kr = p.k + off;
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += qs[d] * __bfloat162float(kr[d]);
      s = dot;
    }
    // Chunk max -> new running max (finite: key j0 is always valid).
    float cm = warpMax(s);
    if (lane == 0) redMax[warp] = cm;
    __syncthreads();
    cm = redMax[0];
#pragma unroll
    for (int w = 1; w < kGenThreads / 32; ++w) cm = fmaxf(cm, redMax[w]);
    const float mNew = fmaxf(m, cm);
    const float alpha = expf(m - mNew);  // 0 on the first chunk (m = -inf)
    const float pj = j < len ? expf(s - mNew) : 0.0f;
    probs[tid] = pj;
    float cs = warpSum(pj);
    if (lane == 0) redSum[warp] = cs;
    __syncthreads();
    cs = 0.0f;
#pragma unroll
    for (int w = 0; w < kGenThreads / 32; ++w) cs += redSum[w];
    l = l * alpha + cs;
    m = mNew;
    const int nKeys = len - j0 < kGenThreads ? int(len - j0) : kGenThreads;
#pragma unroll
    for (int i = 0; i < kGenDimsPerThread; ++i) {
      const int d = tid + i * kGenThreads;
      if (d < D) {
        float a = acc[i] * alpha;
        for (int jj = 0; jj < nKeys; ++jj) a += probs[jj] * __bfloat162float(p.v[rowOff[jj] + d]);
        acc[i] = a;
      }
    }
    __syncthreads();  // probs / rowOff / red* are rewritten by the next chunk
  }

  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
  for (int i = 0; i < kGenDimsPerThread; ++i) {
    const int d = tid + i * kGenThreads;
    if (d < D) p.out[t * int64_t(p.nHeads) * D + int64_t(h) * D + d] = __float2bfloat16_rn(acc[i] * inv);
  }
}

void launchGeneric(bool paged, const GenericParams& p, int64_t tokens, cudaStream_t stream) {
  need(p.D >= 1 && p.D <= kGenMaxD, "attention: head_dim " + std::to_string(p.D) + " exceeds the generic kernel's " +
                                        std::to_string(kGenMaxD));
  need(p.nHeads <= 65535 && tokens <= int64_t(INT32_MAX), "attention: too many heads or tokens");
  if (tokens == 0 || p.nHeads == 0) return;
  const dim3 grid(unsigned(tokens), unsigned(p.nHeads));
  if (paged) genericAttentionKernel<true><<<grid, kGenThreads, 0, stream>>>(p);
  else genericAttentionKernel<false><<<grid, kGenThreads, 0, stream>>>(p);
  IVL_CUDA_CHECK(cudaGetLastError());
}

bool tunedHeadDim(int64_t D) { return D == 64 || D == 96 || D == 128; }

}  // namespace

void CudaBackend::attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, int64_t groups,
                            int64_t nHeads, double scale) {
  impl_->op([&] {
    needDType(q, DType::BF16, "attention: q");
    needDType(k, DType::BF16, "attention: k");
    needDType(v, DType::BF16, "attention: v");
    needDType(out, DType::BF16, "attention: out");
    const int64_t rows = q.rows(), C = q.cols();
    need(nHeads > 0 && groups > 0 && C % nHeads == 0 && rows % groups == 0, "attention: shape mismatch");
    const int64_t D = C / nHeads, N = rows / groups;
    need(k.rows() == rows && v.rows() == rows && out.rows() == rows && k.cols() == C && v.cols() == C &&
             out.cols() == C,
         "attention: q/k/v/out shapes differ");
    if (rows == 0) return;
    const bool tuned = !impl_->genericAttention && tunedHeadDim(D) && scale > 0 && C % 8 == 0 && groups <= 65535 &&
                       nHeads <= 65535 && aligned16(q.raw()) && aligned16(k.raw()) && aligned16(v.raw()) &&
                       aligned16(out.raw()) && rows <= int64_t(INT32_MAX);
    if (tuned) {
      denseAttention(q.ptr<bf16>(), C, k.ptr<bf16>(), C, v.ptr<bf16>(), C, out.ptr<bf16>(), int(groups), int(N),
                     int(nHeads), int(nHeads), int(D), /*causal=*/false, float(scale), impl_->stream);
      impl_->lastAttention = AttentionPath::Dense;
      return;
    }
    GenericParams p{};
    p.q = q.ptr<bf16>();
    p.qStride = C;
    p.k = k.ptr<bf16>();
    p.v = v.ptr<bf16>();
    p.kvStride = C;
    p.out = out.ptr<bf16>();
    p.nHeads = int(nHeads);
    p.nKvHeads = int(nHeads);
    p.D = int(D);
    p.scale = float(scale);
    p.seqLen = N;
    launchGeneric(false, p, rows, impl_->stream);
    impl_->lastAttention = AttentionPath::GenericDense;
  });
}

// The ViT's attention straight from the stacked qkv rows: the qk normalization runs in place
// (one launch for q and k), then the dense kernel reads q, k and v with the row stride 3C. Other
// head sizes or alignments take the interface's default (split, then attention()).
void CudaBackend::qkvAttention(const Tensor& out, const Tensor& qkv, const Tensor& qNorm, const Tensor& kNorm,
                               double eps, int64_t groups, int64_t nHeads, double scale) {
  const int64_t rows = qkv.rows(), C = qkv.cols() / 3;
  const bool fused = impl_->fusedVit && !impl_->genericAttention && qkv.dtype() == DType::BF16 && out.dtype() == DType::BF16 &&
                     qkv.cols() == 3 * C && nHeads > 0 && C % nHeads == 0 && tunedHeadDim(C / nHeads) && scale > 0 &&
                     C % 8 == 0 && groups > 0 && rows % groups == 0 && groups <= 65535 && nHeads <= 65535 &&
                     aligned16(qkv.raw()) && aligned16(out.raw()) && rows <= int64_t(INT32_MAX) &&
                     out.rows() == rows && out.cols() == C;
  if (!fused) return Backend::qkvAttention(out, qkv, qNorm, kNorm, eps, groups, nHeads, scale);
  impl_->op([&] {
    bf16* base = qkv.ptr<bf16>();
    if (qNorm.defined()) {
      needDType(qNorm, DType::F32, "qkvAttention: qNorm");
      needDType(kNorm, DType::F32, "qkvAttention: kNorm");
      need(qNorm.numel() == C && kNorm.numel() == C, "qkvAttention: norm weights must have C entries");
      qkNormBf16(base, rows, C, qNorm.ptr<float>(), kNorm.ptr<float>(), float(eps), impl_->stream);
    }
    const int64_t D = C / nHeads, N = rows / groups;
    denseAttention(base, 3 * C, base + C, 3 * C, base + 2 * C, 3 * C, out.ptr<bf16>(), int(groups), int(N),
                   int(nHeads), int(nHeads), int(D), /*causal=*/false, float(scale), impl_->stream);
    impl_->lastAttention = AttentionPath::Dense;
  });
}

namespace {

// pagedAttention's body. rope: from qkvRopeAttention, which has checked that this batch takes
// the decode kernel (every other path needs the roped q and cache rows it does not write).
void pagedAttentionOn(CudaBackend::Impl& im, const Tensor& out, const Tensor& q, const KvLayer& layer,
                      const PagedBatch& batch, int64_t nHeads, int64_t nKvHeads, double scale,
                      const DecodeRope* rope) {
  needDType(q, DType::BF16, "pagedAttention: q");
  needDType(out, DType::BF16, "pagedAttention: out");
  needDType(layer.k, DType::BF16, "pagedAttention: cache k");
  needDType(layer.v, DType::BF16, "pagedAttention: cache v");
  const int64_t T = batch.numTokens(), B = batch.numSequences(), bs = batch.blockSize;
  need(nHeads > 0 && nKvHeads > 0 && nHeads % nKvHeads == 0 && q.cols() % nHeads == 0,
       "pagedAttention: heads must divide evenly");
  const int64_t C = q.cols(), D = C / nHeads, group = nHeads / nKvHeads;
  need(q.rows() == T && out.rows() == T && out.cols() == C, "pagedAttention: shape mismatch");
  need(layer.k.rank() == 4 && layer.v.shape() == layer.k.shape() && layer.k.dim(1) == bs &&
           layer.k.dim(2) == nKvHeads && layer.k.dim(3) == D,
       "pagedAttention: cache layout");
  // The CSR metadata, checked on the host: a bad page id would be a wild device read.
  need(int64_t(batch.qoIndptr.size()) == B + 1 && int64_t(batch.kvIndptr.size()) == B + 1 &&
           batch.qoIndptr[0] == 0 && batch.kvIndptr[0] == 0 && batch.qoIndptr[B] == T &&
           batch.kvIndptr[B] == int64_t(batch.kvIndices.size()),
       "pagedAttention: malformed qoIndptr/kvIndptr");
  const int64_t numBlocks = layer.k.dim(0);
  for (int32_t pg : batch.kvIndices) need(pg >= 0 && pg < numBlocks, "pagedAttention: page id out of range");
  std::vector<int32_t> seqOf(static_cast<size_t>(T));
  bool standard = true, oneQueryEach = B > 0;
  int64_t maxKv = 0, maxQo = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int32_t q0 = batch.qoIndptr[b], q1 = batch.qoIndptr[b + 1];
    need(q0 <= q1 && batch.kvIndptr[b] <= batch.kvIndptr[b + 1], "pagedAttention: indptr not monotonic");
    const int64_t pagesB = batch.kvIndptr[b + 1] - batch.kvIndptr[b];
    need(pagesB == 0 || (batch.kvLastPageLen[b] >= 1 && batch.kvLastPageLen[b] <= bs),
         "pagedAttention: kvLastPageLen out of range");
    const int64_t kvLen = batch.kvLength(b), qoLen = q1 - q0;
    maxKv = std::max(maxKv, kvLen);
    maxQo = std::max(maxQo, qoLen);
    if (qoLen != 1) oneQueryEach = false;
    for (int32_t t = q0; t < q1; ++t) {
      seqOf[size_t(t)] = int32_t(b);
      const int64_t pos = batch.positions[size_t(t)];
      need(pos >= 0 && pos + 1 <= kvLen, "pagedAttention: query position beyond the cached tokens");
      if (pos != kvLen - qoLen + (t - q0)) standard = false;
    }
  }
  if (T == 0) return;

  PackedUpload meta(im.ctx->allocator, im.staging, im.stream,
                    {{batch.qoIndptr.data(), batch.qoIndptr.size() * 4},
                     {batch.kvIndptr.data(), batch.kvIndptr.size() * 4},
                     {batch.kvIndices.data(), batch.kvIndices.size() * 4},
                     {batch.kvLastPageLen.data(), batch.kvLastPageLen.size() * 4},
                     {batch.positions.data(), batch.positions.size() * 4},
                     {seqOf.data(), seqOf.size() * 4}},
                    &im.pagedMetaUpload);

  const bool tuned = !im.genericAttention && standard && tunedHeadDim(D) && scale > 0 && C % 8 == 0 &&
                     B <= 65535 && nHeads <= 65535 && aligned16(q.raw()) && aligned16(out.raw()) &&
                     aligned16(layer.k.raw()) && aligned16(layer.v.raw());
  require(rope == nullptr || (tuned && oneQueryEach && group <= 16), ErrorCode::Internal,
          "qkvRopeAttention: the batch does not take the decode kernel");
  if (tuned) {
    PagedKV kv;
    kv.k_pages = layer.k.ptr<bf16>();
    kv.v_pages = layer.v.ptr<bf16>();
    kv.kv_indptr = meta.at<int32_t>(1);
    kv.kv_indices = meta.at<int32_t>(2);
    kv.kv_last_page_len = meta.at<int32_t>(3);
    kv.batch = int(B);
    kv.page_size = int(bs);
    kv.num_kv_heads = int(nKvHeads);
    kv.head_dim = int(D);
    if (oneQueryEach && group <= 16) {
      const DecodePlan plan = planPagedDecode(int(B), int(nHeads), int(nKvHeads), int(D),
                                              int(std::min<int64_t>(maxKv, INT32_MAX)), im.numSms);
      const bool grown = im.decodeWorkspace.capacity() < plan.workspace_bytes;
      if (grown) {
        im.decodeWorkspace.reset();
        im.decodeWorkspace = ScratchBlock(im.ctx->allocator, plan.workspace_bytes);
      }
      // A fused-merge plan needs its arrival counters zero: after (re)allocation, or after a
      // split plan without them (too many sequences for the counters) wrote partials over
      // those bytes. The kernel leaves them zero, so otherwise they already are.
      if (plan.fused_merge && (grown || !im.decodeCountersArmed))
        IVL_CUDA_CHECK(cudaMemsetAsync(im.decodeWorkspace.get(), 0, im.decodeWorkspace.capacity(),
                                       im.stream));
      if (plan.num_splits > 1) im.decodeCountersArmed = plan.fused_merge;
      pagedDecode(q.ptr<bf16>(), C, out.ptr<bf16>(), int(nHeads), kv, plan, im.decodeWorkspace.get(),
                  im.decodeWorkspace.capacity(), float(scale), im.stream, rope);
      im.lastAttention = AttentionPath::PagedDecode;
    } else {
      pagedPrefill(q.ptr<bf16>(), C, out.ptr<bf16>(), meta.at<int32_t>(0), int(nHeads), int(maxQo), kv,
                   /*causal=*/true, float(scale), im.stream);
      im.lastAttention = AttentionPath::PagedPrefill;
    }
    return;
  }
  GenericParams p{};
  p.q = q.ptr<bf16>();
  p.qStride = C;
  p.k = layer.k.ptr<bf16>();
  p.v = layer.v.ptr<bf16>();
  p.out = out.ptr<bf16>();
  p.nHeads = int(nHeads);
  p.nKvHeads = int(nKvHeads);
  p.D = int(D);
  p.scale = float(scale);
  p.seqOf = meta.at<int32_t>(5);
  p.positions = meta.at<int32_t>(4);
  p.kvIndptr = meta.at<int32_t>(1);
  p.kvIndices = meta.at<int32_t>(2);
  p.pageSize = int(bs);
  launchGeneric(true, p, T, im.stream);
  im.lastAttention = AttentionPath::GenericPaged;
}

}  // namespace

void CudaBackend::pagedAttention(const Tensor& out, const Tensor& q, const KvLayer& layer, const PagedBatch& batch,
                                 int64_t nHeads, int64_t nKvHeads, double scale) {
  impl_->op([&] { pagedAttentionOn(*impl_, out, q, layer, batch, nHeads, nKvHeads, scale, nullptr); });
}

// Decode steps (one query per sequence, each at its sequence's last position, the last key's
// slot the one its page table names) rope inside the decode kernel: one launch fewer per layer
// (qkvRopeAppend), q never written. Anything else, or INTERNVL_CUDA_ATTN_ROPE=0, composes
// qkvRopeKvWrite and pagedAttention. The conditions below are those under which
// pagedAttentionOn takes the decode kernel, plus the rope's own.
void CudaBackend::qkvRopeAttention(const Tensor& out, const Tensor& q, const KvLayer& layer, const Tensor& qkv,
                                   int64_t nHeads, int64_t nKvHeads, const Tensor& cos, const Tensor& sin,
                                   const PagedBatch& batch, double scale) {
  const int64_t T = batch.numTokens(), B = batch.numSequences(), bs = batch.blockSize;
  const int64_t half = cos.defined() ? cos.cols() : 0, D = 2 * half;
  const auto bf16Of = [](const Tensor& t) { return t.defined() && t.dtype() == DType::BF16; };
  bool fits = impl_->ropeInAttention && !impl_->genericAttention && T == B && B > 0 && B <= 65535 && bs > 0 &&
              nKvHeads > 0 && nHeads % nKvHeads == 0 && nHeads / nKvHeads <= 16 && nHeads <= 65535 &&
              tunedHeadDim(D) && scale > 0 && bf16Of(q) && bf16Of(out) && bf16Of(qkv) && bf16Of(layer.k) &&
              bf16Of(layer.v) && sin.defined() && cos.dtype() == sin.dtype() &&
              (cos.dtype() == DType::BF16 || cos.dtype() == DType::F32) && cos.rows() == T && sin.rows() == T &&
              sin.cols() == half && q.rows() == T && q.cols() == nHeads * D && out.rows() == T &&
              out.cols() == nHeads * D && qkv.rows() == T && qkv.cols() == (nHeads + 2 * nKvHeads) * D &&
              layer.k.rank() == 4 && layer.v.shape() == layer.k.shape() && layer.k.dim(1) == bs &&
              layer.k.dim(2) == nKvHeads && layer.k.dim(3) == D && aligned16(q.raw()) && aligned16(out.raw()) &&
              aligned16(layer.k.raw()) && aligned16(layer.v.raw()) &&
              int64_t(batch.qoIndptr.size()) == B + 1 && int64_t(batch.kvIndptr.size()) == B + 1 &&
              int64_t(batch.kvLastPageLen.size()) == B && int64_t(batch.positions.size()) == T &&
              int64_t(batch.slots.size()) == T;
  for (int64_t b = 0; fits && b < B; ++b) {
    const int64_t pos = batch.positions[size_t(b)];
    const int64_t page = batch.kvIndptr[b] + (pos >= 0 ? pos / bs : 0);
    fits = batch.qoIndptr[b] == b && batch.qoIndptr[b + 1] == b + 1 && pos >= 0 && pos == batch.kvLength(b) - 1 &&
           batch.kvIndptr[b] <= batch.kvIndptr[b + 1] && page < batch.kvIndptr[b + 1] &&
           page < int64_t(batch.kvIndices.size()) &&
           batch.slots[size_t(b)] == int64_t(batch.kvIndices[size_t(page)]) * bs + pos % bs;
  }
  if (!fits) return Backend::qkvRopeAttention(out, q, layer, qkv, nHeads, nKvHeads, cos, sin, batch, scale);
  impl_->op([&] {
    DecodeRope rope;
    rope.qkv = qkv.ptr<bf16>();
    rope.cos = cos.raw();
    rope.sin = sin.raw();
    rope.bf16_tables = cos.dtype() == DType::BF16;
    pagedAttentionOn(*impl_, out, q, layer, batch, nHeads, nKvHeads, scale, &rope);
  });
}

}  // namespace ivl::cuda
