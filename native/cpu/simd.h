// AVX2/FMA kernels for the hot loops of the CPU backend, chosen at run time.
//
// The addon is built for baseline x86-64 (no AVX), so these functions carry
// __attribute__((target("avx2,fma"))) and are only called when the CPU has both
// (cpuid) and the backend was made while INTERNVL_CPU_KERNELS was not "plain". The
// plain C++ loops in cpu_backend.cpp remain the reference path and run everywhere else.
//
// Every output is produced by the same sequence of operations wherever it sits in a
// tile (8-lane FMA accumulation along K, a fixed horizontal sum, then the scalar tail),
// so results do not depend on M, on the tiling or on the thread count.
#pragma once
#include <cstdint>

namespace ivl::cpu::simd {

// True when this CPU has AVX2 and FMA (cpuid, asked once).
bool available();

// y[i·ldy + j] = Σ_k x[i·ldx + k] · w[j·ldw + k]   for i < mr (1..3), j < nr (1..4)
void gemmTileF32(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y, int64_t ldy, int mr, int nr,
                 int64_t K);
// Same with BF16 weights widened in registers.
void gemmTileBf16(const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int mr, int nr,
                  int64_t K);
// dst[i] = bf16 src[i] widened, i < n.
void widenBf16(float* dst, const uint16_t* src, int64_t n);
// Same as gemmTileF32 with int8 weights dequantized in registers: w[j·ldw + k] = float(q) ·
// scales[j·lds + k / group] (the product in fp32, then 8-lane FMA accumulation as in
// gemmTileF32). group % 8 == 0 or group >= K.
void gemmTileI8(const float* x, int64_t ldx, const int8_t* w, int64_t ldw, const float* scales, int64_t lds,
                int64_t group, float* y, int64_t ldy, int mr, int nr, int64_t K);

}  // namespace ivl::cpu::simd
