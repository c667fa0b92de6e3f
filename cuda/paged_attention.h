// Paged rotary attention for the decoder and dense attention for the ViT: the launchers the
// CUDA backend calls. Raw device pointers + a stream; bf16 storage, fp32 accumulation and
// softmax; every launcher validates its arguments (ivl::Error ERR_INVALID_ARG) and checks
// the launch (IVL_CUDA_CHECK -> ivl::Error ERR_CUDA); none synchronizes, exits or aborts.
//
// ---- Paged KV cache (one layer), FlashInfer's CSR layout ---------------------------------
//   k_pages, v_pages   bf16 [num_pages, page_size, num_kv_heads, head_dim]   (page_size 16 by
//                      default; any value >= 1 works, a power of two is cheapest)
//   kv_indptr          int32 [batch + 1]   sequence b owns page-table slots
//                                          kv_indptr[b] .. kv_indptr[b+1]-1
//   kv_indices         int32 [kv_indptr[batch]]   page ids, in sequence order
//   kv_last_page_len   int32 [batch]       keys in b's last page, 1..page_size
// Key j of sequence b (0 <= j < kv_len(b)) lives at
//   page = kv_indices[kv_indptr[b] + j / page_size], slot = j % page_size, and
//   kv_len(b) = (kv_indptr[b+1] - kv_indptr[b] - 1) * page_size + kv_last_page_len[b]
//   (0 when b has no pages).
// All the int32 arrays live in device memory.
//
// ---- Queries of a ragged batch ------------------------------------------------------------
//   q        bf16 [num_tokens, num_qo_heads, head_dim], token t at q + t * q_stride
//            (q_stride >= num_qo_heads * head_dim, in elements: q may be a view into a fused
//            qkv buffer); heads contiguous within a token.
//   qo_indptr int32 [batch + 1]: sequence b's query tokens are qo_indptr[b] .. qo_indptr[b+1]-1,
//            and they are the LAST qo_len(b) keys of its cache (rope_append has appended them),
//            so causal query i of b sees keys 0 .. kv_len(b) - qo_len(b) + i.
//   out      bf16 [num_tokens, num_qo_heads, head_dim], contiguous.
// GQA: query head h reads kv head h / (num_qo_heads / num_kv_heads) (consecutive q heads
// share a kv head). Supported: head_dim 64, 96, 128; num_qo_heads % num_kv_heads == 0 and
// group size <= 16.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernel_trace.h"

namespace ivl::cuda {

// One layer's paged K/V cache and the batch's page tables (see the layout above).
struct PagedKV {
  __nv_bfloat16* k_pages = nullptr;          // [num_pages, page_size, num_kv_heads, head_dim]
  __nv_bfloat16* v_pages = nullptr;          // [num_pages, page_size, num_kv_heads, head_dim]
  const int32_t* kv_indptr = nullptr;        // [batch + 1]
  const int32_t* kv_indices = nullptr;       // [kv_indptr[batch]]
  const int32_t* kv_last_page_len = nullptr; // [batch]
  int batch = 0;
  int page_size = 16;
  int num_kv_heads = 0;
  int head_dim = 0;
};

// ---- Prefill: causal (or not) attention of a ragged batch of query chunks over the cache.
// q/out as above. max_qo_len >= every qo_len(b) sizes the grid (a smaller value is still
// correct, only slower). sm_scale <= 0 means 1/sqrt(head_dim). Flash-style (online softmax,
// tensor cores), no workspace.
void pagedPrefill(const __nv_bfloat16* q, int64_t q_stride, __nv_bfloat16* out,
                  const int32_t* qo_indptr, int num_qo_heads, int max_qo_len, const PagedKV& kv,
                  bool causal, float sm_scale, cudaStream_t stream);

// ---- Dense attention over contiguous K/V (the ViT: num_seqs tiles of seq_len tokens each,
// e.g. 13 x 1025, all in one launch). Token i of sequence s:
//   q at q + (s * seq_len + i) * q_stride + head * head_dim  (likewise k, v with their strides;
//   for a fused qkv buffer [tokens, 3, H, D]: q_stride = k_stride = v_stride = 3*H*D),
//   out bf16 [num_seqs * seq_len, num_qo_heads, head_dim] contiguous.
// causal=false for the ViT. sm_scale <= 0 means 1/sqrt(head_dim).
void denseAttention(const __nv_bfloat16* q, int64_t q_stride, const __nv_bfloat16* k,
                    int64_t k_stride, const __nv_bfloat16* v, int64_t v_stride,
                    __nv_bfloat16* out, int num_seqs, int seq_len, int num_qo_heads,
                    int num_kv_heads, int head_dim, bool causal, float sm_scale,
                    cudaStream_t stream);

// ---- Decode: one query token per sequence (q/out [batch, num_qo_heads, head_dim], q token
// stride q_stride). One CTA per (sequence, kv head, split) loads each K/V tile once for the
// whole query group (the group's heads are the rows of a tensor-core MMA); long contexts are
// split into `num_splits` chunks whose partial (max, sum, acc) a second kernel merges.
struct DecodePlan {
  int num_splits = 1;          // CTAs per (sequence, kv head); 1 = no merge kernel
  int chunk_len = 0;           // keys per split (multiple of 64); the last split takes the rest
  size_t workspace_bytes = 0;  // device scratch pagedDecode needs (0 when num_splits == 1)
  bool fused_merge = false;    // the split kernel's last CTA per (sequence, kv head) merges; the
                               // workspace then holds arrival counters that must be zero before
                               // its first use (the kernel leaves them zero)
};

// Host-only: choose splits from the batch, the longest kv length and the SM count (read it
// once with cudaDeviceGetAttribute(cudaDevAttrMultiProcessorCount)). max_kv_len bounds the
// kv lengths of this step; a longer sequence is still correct (its last split runs longer).
// force_splits > 0 overrides the choice (tests, benchmarks). fused_merge: 1 / 0 forces the
// merge in the split kernel on / off, -1 follows INTERNVL_CUDA_ATTN_FUSED_MERGE (off unless 1).
DecodePlan planPagedDecode(int batch, int num_qo_heads, int num_kv_heads, int head_dim,
                           int max_kv_len, int num_sms, int force_splits = 0, int fused_merge = -1);

// workspace: device memory of at least plan.workspace_bytes, 256-byte aligned (may be null
// when that is 0), zeroed before its first use when plan.fused_merge. It is reused by the next
// call on the same stream, so one buffer sized for the largest batch serves every layer.
// Each query is its sequence's last key (rope_append appended it, or `rope` below does).
// Launched with programmatic dependent launch (pdl.h), the kernel reads the page tables and the
// K/V rows of every other key before it waits for the kernel before it: no kernel since the
// stream's latest plain launch (copy, memset, kernel without PDL) may write those (the decode
// step writes only each sequence's last key). INTERNVL_CUDA_ATTN_EARLY_KV=0 moves every K/V read after the wait.
//
// rope (optional): the queries and the new keys arrive raw and the kernel ropes them (what
// qkvRopeAppendBf16 would do first, bit for bit): q is then ignored, each sequence's query heads
// come from its row of rope->qkv, and its last key's cache row (the page table's, which must be
// the slot the step appended) is written here from the same row before attention reads it.
struct DecodeRope {
  const __nv_bfloat16* qkv = nullptr;  // [batch, (num_qo_heads + 2 num_kv_heads) head_dim] q | k | v
  const void* cos = nullptr;           // [batch, head_dim / 2] at each sequence's query position
  const void* sin = nullptr;
  bool bf16_tables = false;            // cos/sin BF16, else F32
};
void pagedDecode(const __nv_bfloat16* q, int64_t q_stride, __nv_bfloat16* out,
                 int num_qo_heads, const PagedKV& kv, const DecodePlan& plan, void* workspace,
                 size_t workspace_bytes, float sm_scale, cudaStream_t stream,
                 const DecodeRope* rope = nullptr);

#ifdef IVL_KERNEL_TRACE
// Lab: the decode attention kernels (split and merge) record their blocks into buf
// (kernel_trace.h; null stops).
cudaError_t decodeAttentionTraceArm(KernelTraceRecord* buf, unsigned* count, unsigned cap);
#endif

}  // namespace ivl::cuda
