// 8-bit weight-only GEMM (W8A16, issue #7): y[M, N] = x[M, K] · W'[N, K]^T (+ bias), with
// W' = q * scale the dequantized int8 weight of quantize_int8.h, bf16 activations and output,
// fp32 accumulation. Raw device pointers + a stream; shape and pointer errors throw
// ivl::Error(ERR_INVALID_ARG), launch failures ivl::Error(ERR_CUDA); never exits.
//
// Two kernels behind one launcher (gemm_w8a16.cu):
//   decode  (m <= kW8A16DecodeMaxM): a weight-streaming skinny GEMM. Each warp streams
//           16-row x 128-column units of int8 weights with 16-byte loads (several units in
//           flight), dequantizes in registers and runs m16n8k16 bf16 MMAs with the weights as
//           the 16-row operand and up to 32 activation rows as the n side. Split-K across
//           blocks (when N alone cannot fill the GPU) reduces through a caller workspace in a
//           fixed order, so results are deterministic. On sm_90 it is launched with programmatic
//           dependent launch (cuda/pdl.h; INTERNVL_CUDA_PDL=0 turns it off): its first weight
//           units stream in while the previous kernel on the stream finishes, and it touches x,
//           bias, y and the workspace only after that kernel has completed. A chain of PDL
//           launches can run ahead back to the latest plain launch, so the weights must be final
//           before the latest plain kernel launch / copy / memset on the stream (true for weights
//           quantized at load: a step starts with plain launches, e.g. the embedding).
//   prefill (larger m): a tiled tensor-core GEMM (cp.async multi-stage pipeline, x and int8 W
//           tiles in shared memory, int8 -> bf16 in registers, mma.sync m16n8k16, fp32 acc).
// Both apply per-group scales per 128 columns in fp32 (the MMA sees exact integer weights),
// per-channel scales and bias in the epilogue, and match an fp32 product with W' to bf16
// output rounding.
//
// Requirements: K % 8 == 0; x 16-byte aligned with row stride K; y row stride N (4-byte
// aligned); bias [N] or null; m >= 0 (m == 0 does nothing).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

#include "quantize_int8.h"

namespace ivl::cuda {

constexpr int kW8A16DecodeMaxM = 32;  // activation rows handled by the decode kernel

// Workspace the decode path's split-K may use for weight `w` (any m <= kW8A16DecodeMaxM): 32 KB
// of arrival counters followed by fp32 partial sums. Zero it once (cudaMemset) after allocation;
// every call leaves the counters zeroed again, so one workspace (sized for the largest weight)
// serves every weight called in order on one stream. Calls that may run concurrently (other
// streams) need their own workspace.
size_t w8a16WorkspaceBytes(const W8A16Weight& w);

// y = x · W'^T (+ bias). workspace may be null (then no split-K: correct, slower for small N).
void gemmW8A16(const W8A16Weight& w, const __nv_bfloat16* x, int m, __nv_bfloat16* y,
               const __nv_bfloat16* bias, cudaStream_t stream, void* workspace = nullptr,
               size_t workspaceBytes = 0);

// Whether gemmW8A16 is faster for m rows of w than dequantizing w to bf16 and running cuBLAS
// (measured on the H200, lab README): always up to kW8A16DecodeMaxM rows, up to 64 on weights of
// 2048 rows or more, never above.
bool w8a16KernelBeatsDequant(const W8A16Weight& w, int m);

// The stacked [gate | up] projection and the MLP activation in one decode kernel: w is [2F, K]
// (gate rows, then up rows; F % 16 == 0), y [m, F] = silu(x · gateᵀ) · (x · upᵀ), each product
// rounded to bf16 before the activation as gemmW8A16 then siluMulHalves would (the same bits).
// Returns false, having done nothing, where the launcher's decode configuration cannot pair the
// halves (m > kW8A16DecodeMaxM, two tiles per warp at m = 9..16): the caller composes instead.
bool gemmW8A16SiluMul(const W8A16Weight& w, const __nv_bfloat16* x, int m, __nv_bfloat16* y, cudaStream_t stream,
                      void* workspace = nullptr, size_t workspaceBytes = 0);

// The decoder's residual stream around the decode GEMV, with the RMSNorm between two layers'
// projections deferred into them: no norm kernel between the GEMVs (the step's kernel boundaries
// are what is left of batch 1's gap to the roofline, cuda/dev/w8a16/README.md). Each returns
// false, having done nothing, where the decode kernel does not run these rows (the caller then
// composes).

// Per-row sums of squares of residual rows, kept in `slots` partial sums a row ([slots][m] fp32,
// one per 32 outputs, each added in one fixed order), and the RMSNorm's epsilon: what the RMS
// form needs for each row's 1/rms. The buffer holds at least kW8A16RmsMaxSlots · 8 floats.
struct W8A16RmsRows {
  const float* squares = nullptr;
  int slots = 0;
  float eps = 0.f;
};
constexpr int kW8A16RmsMaxSlots = 256;
// Where the RMS form runs: m <= 8 rows whose sums come in slots · (m rounded up to a power of
// two) <= 256 (one value per thread of a block; the 40B's hidden size gives 224 at m = 1).
constexpr bool w8a16RmsRuns(int m, int slots) {
  return m >= 1 && m <= 8 && slots >= 1 && slots * (m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8) <= kW8A16RmsMaxSlots;
}

// The RMS form's input where no residual GEMV precedes it: nextX [m, n] = bf16(x ⊙ g) and x's
// sums of squares into rows (squares given; slots and nothing else set), the bits
// gemmW8A16Residual's next-norm outputs would have for the same x. False, having done nothing,
// where the RMS form could not take them.
bool w8a16RmsPrep(const __nv_bfloat16* x, int m, int n, const float* g, __nv_bfloat16* nextX, W8A16RmsRows& rows,
                  cudaStream_t stream);

// Residual: y += x · W'^T (+ bias), y [m, N] holding the residual rows: each output is
// bf16(y + bf16(product)), the bits of gemmW8A16 into a scratch and an elementwise add. With
// nextW [N] (fp32, the next RMSNorm's weight; m <= 8) it also writes nextX [m, N] = bf16(y ⊙ nextW),
// the RMS form's input, and the rows' sums of squares of y into nextRows (squares given; slots
// set). m <= kW8A16DecodeMaxM where the launcher runs the decode kernel.
bool gemmW8A16Residual(const W8A16Weight& w, const __nv_bfloat16* x, int m, __nv_bfloat16* y,
                       const __nv_bfloat16* bias, cudaStream_t stream, void* workspace = nullptr,
                       size_t workspaceBytes = 0, const float* nextW = nullptr, __nv_bfloat16* nextX = nullptr,
                       W8A16RmsRows* nextRows = nullptr);

// RMS: x = bf16(r ⊙ g) for residual rows r whose sums of squares are in `rows` (both from
// gemmW8A16Residual), and y = bf16((x · W'^T) · rsqrt(mean_k r[i,k]² + eps) (+ bias)): the
// projection of RMSNorm(r; g), the 1/rms applied after the sums. Not the composed ops' bits
// (they round r · 1/rms to bf16 before g); within bf16 rounding of them. Where
// w8a16RmsRuns(m, rows.slots). SiluMulRms: the same for gemmW8A16SiluMul's stacked gate/up.
bool gemmW8A16Rms(const W8A16Weight& w, const __nv_bfloat16* x, int m, __nv_bfloat16* y, const __nv_bfloat16* bias,
                  const W8A16RmsRows& rows, cudaStream_t stream, void* workspace = nullptr,
                  size_t workspaceBytes = 0);
bool gemmW8A16SiluMulRms(const W8A16Weight& w, const __nv_bfloat16* x, int m, __nv_bfloat16* y,
                         const W8A16RmsRows& rows, cudaStream_t stream, void* workspace = nullptr,
                         size_t workspaceBytes = 0);

}  // namespace ivl::cuda
