// The ViT's data-movement ops on the CUDA backend (layouts as in runtime/backend.h):
//   patchify      pixels[T, 3, S, S] -> rows [T·G², 3·p·p] (channel, ky, kx), G = S/p
//   vitEmbed      out[T, 1+G², C] = (cls | patches[t·G² + i]) + pos[i], bf16(a + b) once
//   pixelShuffle  x[T, 1+G², C] (CLS dropped) -> out[T, (G/s)², s²·C]
// bf16 activations, fp32 cls/pos (exact images of the checkpoint's bf16 values).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ivl::cuda {

void patchifyBf16(__nv_bfloat16* out, const __nv_bfloat16* pixels, int64_t T, int64_t S, int64_t p,
                  cudaStream_t stream);
void vitEmbedBf16(__nv_bfloat16* out, const __nv_bfloat16* patches, const float* cls, const float* pos, int64_t T,
                  int64_t N, int64_t C, cudaStream_t stream);
// elemBytes: bytes per element (the op is a pure copy).
void pixelShuffleRows(void* out, const void* x, int64_t T, int64_t grid, int64_t scale, int64_t C,
                      int64_t elemBytes, cudaStream_t stream);

}  // namespace ivl::cuda
