// The step between a stacked q/k/v matmul and attention, in one launch: split the columns,
// rotate q and k (NeoX rotate-half with per-token cos/sin tables, as ropeBf16 computes it),
// and write k and v into their KV-cache page rows. Replaces splitColumns + 2 rope + kvWrite
// (seven launches and two row copies per decoder layer).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/tensor.h"

namespace ivl::cuda {

//   qkv      [T, (Hq + 2·KV)·D]   rows [q heads | k heads | v heads]
//   q        [T, Hq·D]            <- rope(q part)
//   kCache,  [slots, KV·D] rows   row slots[t] <- rope(k part) / v part
//   vCache
//   cos, sin [T, D/2] of csType (BF16 or F32); slots int64 [T] on the device
void qkvRopeAppendBf16(__nv_bfloat16* q, __nv_bfloat16* kCache, __nv_bfloat16* vCache, const __nv_bfloat16* qkv,
                       const void* cos, const void* sin, DType csType, const int64_t* slots, int64_t T, int64_t Hq,
                       int64_t KV, int64_t half, cudaStream_t stream);

}  // namespace ivl::cuda
