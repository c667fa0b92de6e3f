// A 16-byte load of weights that are read once per call (the decode GEMVs' streams): kept out of
// L1, which holds the activations the kernel reuses. PINNED makes the asm volatile, so the
// compiler keeps the load ahead of a later pdlWait() (a prologue's loads are meant to be in
// flight while the previous kernel finishes).
#pragma once
#include <cuda_runtime.h>

namespace ivl::cuda {

template <bool PINNED = false>
__device__ __forceinline__ uint4 ldgStream(const uint4* p) {
  uint4 r;
  if constexpr (PINNED)
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
  else
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
  return r;
}

}  // namespace ivl::cuda
