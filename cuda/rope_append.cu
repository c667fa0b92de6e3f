// RoPE (NeoX rotate-half) on q in place and on k, plus the append of k', v into the paged
// KV cache, in one launch. Contract and layouts: rope_append.h, paged_attention.h.
// Lab (CPU reference, versions, validate, benchmark): cuda/dev/rope_append.cu.
#include "rope_append.h"

#include <string>

#include "attention_mma.h"
#include "check.h"

namespace ivl::cuda {
namespace rope_detail {

using attn::bf16;

// Heads (q, then k, then v) handled by one CTA: a token's work is spread over
// ceil((Hq + 2 Hkv) / kHeadsPerCta) CTAs so that a decode step (few tokens) still fills the GPU
// (one CTA per token measured 13 us for 32 tokens of the 40B vs 8 us for a flat grid).
constexpr int kHeadsPerCta = 8;

// CTA (token t, head group y): cos/sin of the token's position are computed once into shared
// memory (HEAD_DIM/2 full-precision sincosf: positions reach 32k+, where __sinf is off), then
// the group's q and k heads are rotated from them, two frequencies (a bf16x2 from each half) per
// item, and its v heads copied in 16-byte chunks. HEAD_DIM: 64, 96 or 128.
template <int HEAD_DIM>
__global__ void __launch_bounds__(128)
ropeAppendKernel(bf16* __restrict__ q, int64_t qStride, const bf16* __restrict__ k,
                 int64_t kStride, const bf16* __restrict__ v, int64_t vStride, int numQoHeads,
                 int batch, const int32_t* __restrict__ qoIndptr,
                 const int32_t* __restrict__ positions, const float* __restrict__ invFreq,
                 float scaling, bf16* __restrict__ kPages, bf16* __restrict__ vPages,
                 const int32_t* __restrict__ kvIndptr, const int32_t* __restrict__ kvIndices,
                 int pageSize, int numKvHeads) {
  constexpr int HALF = HEAD_DIM / 2;
  constexpr int PAIRS = HALF / 2;       // bf16x2 items per half
  constexpr int CHUNKS = HEAD_DIM / 8;  // 16-byte chunks per v head
  __shared__ float sCos[HALF];
  __shared__ float sSin[HALF];

  const int t = blockIdx.x;
  const int headLo = blockIdx.y * kHeadsPerCta;
  const int rotHeads = numQoHeads + numKvHeads;  // heads 0..rotHeads-1 rotate, the rest copy
  const int headHi = min(headLo + kHeadsPerCta, rotHeads + numKvHeads);
  // Sequence of token t: the last b with qoIndptr[b] <= t (empty sequences repeat a value).
  int lo = 0, hi = batch;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (qoIndptr[mid] <= t) lo = mid; else hi = mid - 1;
  }
  const int b = lo;
  const int pos = positions[t];

  if (headLo < rotHeads) {
    for (int i = threadIdx.x; i < HALF; i += blockDim.x) {
      float s, c;
      sincosf(static_cast<float>(pos) * invFreq[i], &s, &c);
      sCos[i] = c * scaling;
      sSin[i] = s * scaling;
    }
  }
  // Cache slot of this token; a position outside b's page table is not appended (a caller
  // bug, but it must not scribble over another sequence's pages).
  const int pageSlot = pos >= 0 ? pos / pageSize : -1;
  const int pagesOfB = kvIndptr[b + 1] - kvIndptr[b];
  const bool append = pageSlot >= 0 && pageSlot < pagesOfB;
  const int64_t kvRow =
      append ? (static_cast<int64_t>(kvIndices[kvIndptr[b] + pageSlot]) * pageSize + pos % pageSize) *
                   numKvHeads * HEAD_DIM
             : 0;
  __syncthreads();

  const int rotHi = min(headHi, append ? rotHeads : numQoHeads);
  const int rotItems = max(0, rotHi - headLo) * PAIRS;
  for (int it = threadIdx.x; it < rotItems; it += blockDim.x) {
    const int head = headLo + it / PAIRS;
    const int i = (it % PAIRS) * 2;
    const bf16* src;
    bf16* dst;
    if (head < numQoHeads) {
      dst = q + t * qStride + head * HEAD_DIM;
      src = dst;
    } else {
      src = k + t * kStride + (head - numQoHeads) * HEAD_DIM;
      dst = kPages + kvRow + (head - numQoHeads) * HEAD_DIM;
    }
    const float2 x1 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(src + i));
    const float2 x2 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(src + i + HALF));
    const float c0 = sCos[i], c1 = sCos[i + 1], s0 = sSin[i], s1 = sSin[i + 1];
    *reinterpret_cast<__nv_bfloat162*>(dst + i) =
        __floats2bfloat162_rn(x1.x * c0 - x2.x * s0, x1.y * c1 - x2.y * s1);
    *reinterpret_cast<__nv_bfloat162*>(dst + i + HALF) =
        __floats2bfloat162_rn(x2.x * c0 + x1.x * s0, x2.y * c1 + x1.y * s1);
  }
  if (!append) return;
  const int copyLo = max(headLo, rotHeads);
  const int copyItems = max(0, headHi - copyLo) * CHUNKS;
  for (int it = threadIdx.x; it < copyItems; it += blockDim.x) {
    const int head = copyLo - rotHeads + it / CHUNKS, c = it % CHUNKS;
    *reinterpret_cast<uint4*>(vPages + kvRow + head * HEAD_DIM + c * 8) =
        *reinterpret_cast<const uint4*>(v + t * vStride + head * HEAD_DIM + c * 8);
  }
}

}  // namespace rope_detail

void ropeAppend(__nv_bfloat16* q, int64_t q_stride, const __nv_bfloat16* k, int64_t k_stride,
                const __nv_bfloat16* v, int64_t v_stride, int num_tokens, int num_qo_heads,
                const int32_t* qo_indptr, const int32_t* positions, const float* inv_freq,
                float attention_scaling, const PagedKV& kv, cudaStream_t stream) {
  const int D = kv.head_dim;
  const auto arg = [](bool ok, const std::string& what) {
    ivl::require(ok, ivl::ErrorCode::InvalidArg, "ropeAppend: " + what);
  };
  arg(D == 64 || D == 96 || D == 128,
      "head_dim must be 64, 96 or 128, got " + std::to_string(D));
  arg(num_tokens >= 0 && num_qo_heads > 0 && kv.num_kv_heads > 0 && kv.batch > 0 &&
          kv.page_size > 0,
      "num_tokens >= 0, num_qo_heads, num_kv_heads, batch and page_size > 0 required");
  if (num_tokens == 0) return;
  arg(q && k && v && qo_indptr && positions && inv_freq && kv.k_pages && kv.v_pages &&
          kv.kv_indptr && kv.kv_indices,
      "null pointer");
  arg(q_stride >= int64_t(num_qo_heads) * D && k_stride >= int64_t(kv.num_kv_heads) * D &&
          v_stride >= int64_t(kv.num_kv_heads) * D,
      "token strides must cover all heads");
  arg(q_stride % 8 == 0 && k_stride % 8 == 0 && v_stride % 8 == 0,
      "token strides must be multiples of 8 elements (16 bytes)");
  arg((reinterpret_cast<uintptr_t>(q) | reinterpret_cast<uintptr_t>(k) |
       reinterpret_cast<uintptr_t>(v) | reinterpret_cast<uintptr_t>(kv.v_pages) |
       reinterpret_cast<uintptr_t>(kv.k_pages)) % 16 == 0,
      "q, k, v and the pages must be 16-byte aligned");

  using namespace rope_detail;
  const int heads = num_qo_heads + 2 * kv.num_kv_heads;
  const dim3 grid(static_cast<unsigned>(num_tokens), (heads + kHeadsPerCta - 1) / kHeadsPerCta);
  const dim3 block(128);
#define IVL_ROPE_LAUNCH(DIM)                                                                 \
  ropeAppendKernel<DIM><<<grid, block, 0, stream>>>(                                         \
      q, q_stride, k, k_stride, v, v_stride, num_qo_heads, kv.batch, qo_indptr, positions,  \
      inv_freq, attention_scaling, kv.k_pages, kv.v_pages, kv.kv_indptr, kv.kv_indices,     \
      kv.page_size, kv.num_kv_heads)
  switch (D) {
    case 64: IVL_ROPE_LAUNCH(64); break;
    case 96: IVL_ROPE_LAUNCH(96); break;
    default: IVL_ROPE_LAUNCH(128); break;
  }
#undef IVL_ROPE_LAUNCH
  IVL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ivl::cuda
