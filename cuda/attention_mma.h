// Device helpers shared by the attention kernels (prefill, decode) and their lab
// versions: cp.async tile loads, ldmatrix fragment loads, the bf16 m16n8k16 tensor-core
// MMA, and the fragment layouts they imply. Include from .cu files only.
//
// Fragment layouts of mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA), with
// lane = 0..31, g = lane / 4 ("group", a row), t = lane % 4 ("thread in group"):
//   A (16x16, row-major), 4 x b32 = 8 bf16:
//     a[0] = A[g][2t..2t+1]     a[1] = A[g+8][2t..2t+1]
//     a[2] = A[g][2t+8..2t+9]   a[3] = A[g+8][2t+8..2t+9]
//   B (16x8, "col": B[k][n]), 2 x b32:
//     b[0] = B[2t..2t+1][g]     b[1] = B[2t+8..2t+9][g]
//   C/D (16x8 fp32), 4 floats:
//     c[0..1] = C[g][2t..2t+1]  c[2..3] = C[g+8][2t..2t+1]
// so an accumulator of S = Q K^T over 16 keys (two n-blocks) is, packed to bf16, exactly
// the A fragment of P for P V: no shuffle between the two products (FlashAttention-2).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ivl::cuda::attn {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ uint32_t smemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy that bypasses L1 (.cg). When !valid, nothing is read and
// the 16 shared bytes are zero-filled (src-size 0); `gmem` must still be a mapped address,
// callers pass a clamped in-range one.
__device__ __forceinline__ void cpAsync16(void* smem, const void* gmem, bool valid) {
  const int srcBytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(smem)), "l"(gmem),
               "r"(srcBytes)
               : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Wait until at most N committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i; each lane
// receives (row lane/4, cols 2(lane%4)..+1) of every matrix.
__device__ __forceinline__ void ldmatrixX4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                           const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smemAddr(smem))
               : "memory");
}
// Same, transposed: each lane receives (rows 2(lane%4)..+1, col lane/4) of every matrix.
__device__ __forceinline__ void ldmatrixX4Trans(uint32_t& r0, uint32_t& r1, uint32_t& r2,
                                                uint32_t& r3, const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smemAddr(smem))
               : "memory");
}

// c += A(16x16) * B(16x8), bf16 inputs, fp32 accumulation.
__device__ __forceinline__ void mmaBf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats -> bf16x2 (round to nearest even); `lo` lands in the low half, which holds
// the lower column index in every fragment above.
__device__ __forceinline__ uint32_t packBf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// 2^x by one MUFU.EX2 (ex2.approx.ftz: ~2 ulp; results below 2^-126 flush to 0, which the
// softmax, whose exponents are all <= 0, never needs). exp2f without --use_fast_math adds
// denormal handling around the same instruction.
__device__ __forceinline__ float fastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Max / sum over the 4 lanes of a quad (the lanes holding one accumulator row).
__device__ __forceinline__ float quadMax(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quadSum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}
// Max / sum over a whole warp.
__device__ __forceinline__ float warpMax(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float warpSum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// Shared-memory row stride (elements) of a [rows][HEAD_DIM] bf16 tile: +8 elements (16 B)
// so that the 8 rows one ldmatrix phase reads start in 8 different 4-bank groups
// (row pitch 144/208/272 B for D = 64/96/128): conflict-free without a swizzle.
template <int HEAD_DIM>
struct TileStride {
  static constexpr int value = HEAD_DIM + 8;
};

// Number of keys of sequence b in a CSR page table (0 when it has no pages).
__device__ __forceinline__ int pagedKvLen(const int32_t* kvIndptr, const int32_t* kvLastPageLen,
                                          int pageSize, int b) {
  const int pages = kvIndptr[b + 1] - kvIndptr[b];
  return pages > 0 ? (pages - 1) * pageSize + kvLastPageLen[b] : 0;
}

}  // namespace ivl::cuda::attn
