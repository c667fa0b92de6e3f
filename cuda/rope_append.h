// Rotary position embedding (NeoX rotate-half) on q and k, and the append of k, v into the
// paged KV cache, fused in one launch. Layouts: cuda/paged_attention.h.
//
// For token t of sequence b (qo_indptr[b] <= t < qo_indptr[b+1]) at position p = positions[t]:
//   freq_i  = fp32(p) * inv_freq[i]            (fp32, as transformers computes it)
//   cos_i   = cos(freq_i) * attention_scaling,  sin_i = sin(freq_i) * attention_scaling
//   for i < D/2:  x'[i]       = x[i] * cos_i - x[i + D/2] * sin_i
//                 x'[i + D/2] = x[i + D/2] * cos_i + x[i] * sin_i
// applied to every q head in place and to every k head; k' and v are written to key slot p
// of sequence b: page kv_indices[kv_indptr[b] + p / page_size], slot p % page_size. The cache
// position is the rotary position (InternVL2's decoders have no offset between the two).
// The page table must already cover slot p (the block manager grows it before the step);
// nothing else in the cache is touched.
//
// inv_freq [head_dim/2] fp32 on the device: theta^(-2i/D) for plain RoPE; the backend
// passes the table it wants (dynamic NTK: rescaled theta; Phi3 su/longrope: divided by the
// short or long ext factors) and attention_scaling (1, or ~1.190238 for Phi3 su).
// Math in fp32 with a single bf16 rounding of each output (transformers rounds cos/sin to
// bf16 first: differences stay within bf16 noise).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "paged_attention.h"

namespace ivl::cuda {

// q: bf16 [num_tokens, num_qo_heads, head_dim], token stride q_stride (rotated in place).
// k, v: bf16 [num_tokens, num_kv_heads, head_dim], token strides k_stride, v_stride (read only).
// qo_indptr int32 [batch + 1], positions int32 [num_tokens] (device).
void ropeAppend(__nv_bfloat16* q, int64_t q_stride, const __nv_bfloat16* k, int64_t k_stride,
                const __nv_bfloat16* v, int64_t v_stride, int num_tokens, int num_qo_heads,
                const int32_t* qo_indptr, const int32_t* positions, const float* inv_freq,
                float attention_scaling, const PagedKV& kv, cudaStream_t stream);

}  // namespace ivl::cuda
