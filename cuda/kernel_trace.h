// Block timeline of the decode step's kernels, for the W8A16 lab only (its build.sh defines
// IVL_KERNEL_TRACE; the addon never does, and then the macros below are empty). Thread 0 of
// every block of an instrumented kernel records the grid's launch number (%gridid), its SM, and
// %globaltimer when the block started, when its PDL wait returned, at up to two marks inside
// (IVL_TRACE_MARK) and when it ended, so the lab can see how the kernels of a PDL chain overlap:
// which one is on the critical path, where HBM waits, and where a kernel's own time goes. A
// translation unit's records go to the buffer its own arm function was given.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace ivl::cuda {

struct KernelTraceRecord {
  unsigned long long grid, start, go, end;  // %gridid; %globaltimer ns (go = 0: no PDL wait)
  unsigned long long mark[2];               // at IVL_TRACE_MARK(0 / 1) inside the kernel (0: none)
  unsigned sm, block;
};

}  // namespace ivl::cuda

#ifdef IVL_KERNEL_TRACE
namespace ivl::cuda::kernel_trace {

struct State {
  KernelTraceRecord* buf;
  unsigned* count;
  unsigned cap;
};
static __device__ State gState;  // per translation unit; set by that unit's arm function

__device__ __forceinline__ unsigned long long now() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

struct Scope {
  unsigned long long t0 = 0, go = 0, mark[2] = {0, 0};
  __device__ Scope() {
    if (threadIdx.x == 0) t0 = now();
  }
  __device__ void wentOn() {
    if (threadIdx.x == 0) go = now();
  }
  __device__ void markAt(int i) {
    if (threadIdx.x == 0) mark[i] = now();
  }
  __device__ ~Scope() {
    if (threadIdx.x != 0) return;
    // The end time first: the record's own loads and atomic below take an L2 round trip or two,
    // which an end read after them counted in (session 10's tables have ~1 us of it per kernel).
    const unsigned long long end = now();
    const State s = gState;
    if (s.buf == nullptr) return;
    unsigned long long grid;
    unsigned sm;
    asm volatile("mov.u64 %0, %%gridid;" : "=l"(grid));
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    const unsigned i = atomicAdd(s.count, 1u);
    if (i < s.cap) s.buf[i] = {grid, t0, go, end, {mark[0], mark[1]}, sm, blockIdx.x + blockIdx.y * gridDim.x};
  }
};

// Host: points this translation unit's kernels at buf (null: stop recording).
static inline cudaError_t arm(KernelTraceRecord* buf, unsigned* count, unsigned cap) {
  const State s{buf, count, cap};
  return cudaMemcpyToSymbol(gState, &s, sizeof s);
}

}  // namespace ivl::cuda::kernel_trace
#define IVL_TRACE_SCOPE ::ivl::cuda::kernel_trace::Scope ivlTraceScope
#define IVL_TRACE_GO ivlTraceScope.wentOn()
#define IVL_TRACE_MARK(i) ivlTraceScope.markAt(i)
#else
#define IVL_TRACE_SCOPE
#define IVL_TRACE_GO
#define IVL_TRACE_MARK(i)
#endif
