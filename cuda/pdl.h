// Programmatic dependent launch (PDL, sm_90): a kernel launched with the attribute
// cudaLaunchAttributeProgrammaticStreamSerialization may start while the kernel before it on
// the stream is still running, as soon as every block of that kernel has executed
// pdlLaunchDependents() (or exited). It is used on the decode step, where each GEMV can stream
// its weights (written at load, never by the step) during the previous kernel's tail.
//
// Contract for a kernel launched through launchMaybePdl(..., pdl = true):
//   - Every thread executes pdlWait() before it reads anything an earlier kernel on the stream
//     may write (activations, KV cache, workspaces) and before it writes anything at all. The
//     wait returns once the previous grid has completed and its memory is visible; that grid
//     in turn waited for its own predecessor, so all earlier work is complete too.
//   - Only data that no kernel of the step writes (weights, scales) is read before the wait.
//     Since each PDL kernel may start once its predecessor's blocks have all run
//     pdlLaunchDependents(), a chain of them can run ahead back to the latest plain launch
//     (kernel, copy, memset): such data must be final before that.
// pdlLaunchDependents() only lets the next kernel be scheduled early; it orders nothing, so it
// may come first thing. In a kernel launched without the attribute both instructions are
// no-ops, so adding them to a kernel is always safe; it is the attribute that needs the wait.
//
// The attribute is used only on compute capability 9.x: the library carries sm_90a machine code
// (which has the instructions) plus compute_80 PTX, and any other GPU runs that PTX, where the
// instructions are compiled out. INTERNVL_CUDA_PDL=0 turns it off (read once per process);
// pdlSetOverride() lets the kernel labs time both ways in one run.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdlib>
#include <utility>

#include "check.h"
#include "env_switch.h"

namespace ivl::cuda {

__device__ __forceinline__ void pdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void pdlLaunchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

namespace pdl_detail {
// -1: follow the environment; 0 / 1: forced by pdlSetOverride.
inline std::atomic<int>& overrideFlag() {
  static std::atomic<int> v{-1};
  return v;
}
inline bool envAllows() {
  static const bool allowed = envSwitch("INTERNVL_CUDA_PDL", true);
  return allowed;
}
// Per device: 0 unknown, 1 capable (9.x), 2 not.
inline std::atomic<int>& capable(int dev) {
  static std::atomic<int> cache[64];
  static std::atomic<int> spill{0};
  return dev >= 0 && dev < 64 ? cache[dev] : spill;
}
}  // namespace pdl_detail

// Forces PDL on (1) or off (0) for later launches, or back to the environment's choice (-1).
inline void pdlSetOverride(int mode) { pdl_detail::overrideFlag().store(mode, std::memory_order_relaxed); }

// Whether launches on the current device use the PDL attribute.
inline bool pdlEnabled() {
  const int o = pdl_detail::overrideFlag().load(std::memory_order_relaxed);
  if (o == 0 || (o < 0 && !pdl_detail::envAllows())) return false;
  int dev = 0;
  IVL_CUDA_CHECK(cudaGetDevice(&dev));
  std::atomic<int>& c = pdl_detail::capable(dev);
  int v = dev >= 0 && dev < 64 ? c.load(std::memory_order_relaxed) : 0;
  if (v == 0) {
    int major = 0;
    IVL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    v = major == 9 ? 1 : 2;
    c.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

// Launches kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when `pdl`
// (callers pass pdlEnabled(), or false for a kernel without pdlWait). Launch errors throw.
template <class... KArgs, class... Args>
void launchMaybePdl(bool pdl, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                    Args&&... args) {
  if (!pdl) {
    kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
    IVL_CUDA_CHECK(cudaGetLastError());
    return;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  IVL_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

}  // namespace ivl::cuda
