// Explicit-configuration entry points of the W8A16 GEMM, for the kernel lab
// (cuda/dev/w8a16) and tests: the launcher in gemm_w8a16.h picks these itself.
#pragma once
#include "gemm_w8a16.h"
#include "kernel_trace.h"

namespace ivl::cuda {

struct W8A16DecodeConfig {
  int tilesPerBlock = 8;  // 16-row tiles per 256-thread block (8, 4 or 2); the block's 8 warps
                          // are tilesPerBlock tiles x (8 / tilesPerBlock) interleaved K lanes
  int splitK = 1;         // blocks along K (reduced through the workspace when > 1)
  int depth = 4;          // 2048-byte weight units per warp in flight (2 or 4)
  int tilesPerWarp = 1;   // 1, or 2 (then depth 2): each warp's activation loads feed two tiles'
                          // MMAs; a block covers tilesPerBlock x tilesPerWarp tiles. The
                          // launcher picks 2 at m = 9..16 on wide per-channel weights.
};

enum class W8A16PrefillTile : int {
  M128N128S3 = 0,  // 128x128 block tile, 8 warps (2x4, warp tile 64x32), 3 stages, 144 KB smem
  M128N128S4 = 1,  // same, 4 stages, 192 KB smem
  M64N128S4 = 2,   // 64x128, 8 warps (2x4, warp tile 32x32), 4 stages, 128 KB smem
  M64N64S4 = 3,    // 64x64, 4 warps (2x2, warp tile 32x32), 4 stages, 96 KB smem (2 blocks/SM)
  // Skinny m (a batch of decode rows): 8 warps side by side along N, so each weight fragment is
  // dequantized once per block, and 2 blocks/SM; meant to run split along K.
  M32N128S4 = 4,   // 32x128, 8 warps (1x8, warp tile 32x16), 4 stages, 96 KB smem
  M64N128W8S3 = 5, // 64x128, 8 warps (1x8, warp tile 64x16), 3 stages, 96 KB smem
};
constexpr int kW8A16PrefillTileCount = 6;

// The tensor-core kernel's configuration: its tile and the blocks along K (> 1: partial sums
// through the workspace, reduced in split order by each block tile's last block).
struct W8A16PrefillConfig {
  W8A16PrefillTile tile = W8A16PrefillTile::M64N64S4;
  int splitK = 1;
};

// What the launcher would choose.
W8A16DecodeConfig w8a16ChooseDecode(const W8A16Weight& w, int m, int smCount, size_t workspaceBytes);
W8A16PrefillTile w8a16ChoosePrefill(const W8A16Weight& w, int m, int smCount);
// The launcher's tensor-core configuration for m rows (tile and split), within workspaceBytes.
W8A16PrefillConfig w8a16ChoosePrefillConfig(const W8A16Weight& w, int m, int smCount, size_t workspaceBytes);

// Decode kernel: weight units per warp to prefetch into L2 ahead of the register ring
// (prefetch.global.L2), 0 = none. Process-wide, for the lab's sweep.
void w8a16SetL2Ahead(int units);

// Decode kernel, process-wide, for the lab's layer-chain A/Bs: the ring depth at m <= 8 (2 or 4;
// 0 = the launcher's).
void w8a16SetDecodeLab(int smallDepth);

#ifdef IVL_KERNEL_TRACE
// Lab: the decode GEMVs record their blocks into buf (kernel_trace.h; null stops).
cudaError_t w8a16TraceArm(KernelTraceRecord* buf, unsigned* count, unsigned cap);
// Lab, trace build: how many of a warp's ring units the decode GEMV loads before its PDL wait
// (the rest right after it; 0 = all, as always outside this build).
void w8a16SetPrologueUnits(int units);
#endif

// Workspace bytes a decode call with this configuration needs.
size_t w8a16DecodeWorkspaceBytes(const W8A16Weight& w, int m, const W8A16DecodeConfig& cfg);

// The two kernels with an explicit configuration (m <= kW8A16DecodeMaxM for decode).
// The decode kernel's residual-stream forms with an explicit configuration (the lab's validate):
// rms set, the RMS form of gemmW8A16Rms (silu: gemmW8A16SiluMulRms; m <= 8, one tile per warp);
// residual, the y += form of gemmW8A16Residual (nextW / nextX / nextSq as there; nextSlots
// receives the slot count).
void gemmW8A16DecodeFused(const W8A16Weight& w, const __nv_bfloat16* x, int m, __nv_bfloat16* y,
                          const __nv_bfloat16* bias, const W8A16DecodeConfig& cfg, void* workspace,
                          size_t workspaceBytes, cudaStream_t stream, bool silu, const W8A16RmsRows* rms,
                          bool residual, const float* nextW = nullptr, __nv_bfloat16* nextX = nullptr,
                          float* nextSq = nullptr, int* nextSlots = nullptr);

void gemmW8A16Decode(const W8A16Weight& w, const __nv_bfloat16* x, int m, __nv_bfloat16* y,
                     const __nv_bfloat16* bias, const W8A16DecodeConfig& cfg, void* workspace,
                     size_t workspaceBytes, cudaStream_t stream);
// gemmW8A16SiluMul with an explicit configuration (one tile per warp, tilesPerBlock 2, 4 or 8).
void gemmW8A16SiluMulDecode(const W8A16Weight& w, const __nv_bfloat16* x, int m, __nv_bfloat16* y,
                            const W8A16DecodeConfig& cfg, void* workspace, size_t workspaceBytes,
                            cudaStream_t stream);
void gemmW8A16Prefill(const W8A16Weight& w, const __nv_bfloat16* x, int m, __nv_bfloat16* y,
                      const __nv_bfloat16* bias, W8A16PrefillTile tile, cudaStream_t stream);
// Split along K (cfg.splitK > 1 needs a zeroed workspace of w8a16PrefillWorkspaceBytes).
void gemmW8A16PrefillSplit(const W8A16Weight& w, const __nv_bfloat16* x, int m, __nv_bfloat16* y,
                           const __nv_bfloat16* bias, const W8A16PrefillConfig& cfg, void* workspace,
                           size_t workspaceBytes, cudaStream_t stream);
size_t w8a16PrefillWorkspaceBytes(const W8A16Weight& w, int m, const W8A16PrefillConfig& cfg);

}  // namespace ivl::cuda
