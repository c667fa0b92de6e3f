// The CUDA backend's device memory: a caching allocator with size-bucketed free lists
// (PyTorch-style, one stream), and the ivl::Buffer that owns one of its blocks.
//
// Why a cache: the graph allocates every activation per op; cudaMalloc/cudaFree per op
// would synchronize the device and cost tens of microseconds each. Blocks go back to a
// free list keyed by their size class and are handed out again to later requests of the
// same class. Reuse is stream-ordered: all work of the backend runs on one stream, so a
// block freed while kernels still read it is only rewritten by work queued after them.
//
// Size classes (the bytes actually reserved for a request of n bytes):
//   n <= 512 B          512 B
//   n <  16 MiB         the next of 8 geometric steps per power of two (<= 12.5% slack)
//   n >= 16 MiB         the next multiple of 2 MiB                        (<= 12.5% slack)
// Persistent blocks (weights) are exact (256-byte rounded), never cached: they live as
// long as the model, and odd sizes would only sit in the free lists.
//
// Out of memory: the free lists are emptied (after a stream synchronize) and cudaMalloc
// retried once; a second failure throws ivl::Error(ERR_OOM) naming the request, the
// device's free/total memory and what this allocator holds.
//
// Fault injection (tests; runtime/fault_injection.h): each allocator reads the environment
// variable INTERNVL_CUDA_FAULT once, when it is made ("oom-after=N": the allocation after the
// first N fails as above, weights included, so a load can be failed part way; "error-after=N":
// the backend op after the first N fails with ERR_CUDA), unless a pending plan
// (setPendingFaultPlan) comes first, and faults() arms it later. Every
// allocate() call counts, cache hits too, so a plan does not depend on what is cached.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/fault_injection.h"
#include "runtime/tensor.h"

namespace ivl::cuda {

struct AllocatorStats {
  size_t inUseBytes = 0;       // reserved bytes of live blocks (cached + persistent)
  size_t cachedBytes = 0;      // bytes sitting in the free lists
  size_t persistentBytes = 0;  // live persistent (weight) bytes, included in inUseBytes
  size_t peakInUseBytes = 0;
  uint64_t deviceMallocs = 0;  // cudaMalloc calls so far (steady state: no growth)
  uint64_t cacheHits = 0;      // requests served from a free list
};

class CachingAllocator {
 public:
  // All blocks are used by work on `stream` (the OOM path synchronizes it before freeing).
  CachingAllocator(int device, cudaStream_t stream);
  ~CachingAllocator();  // frees every cached block; live blocks must be gone already
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least `bytes` (256-byte aligned; nullptr for 0 bytes). *reserved gets
  // the block's real size, which release() must be given back. Throws ERR_OOM / ERR_CUDA.
  void* allocate(size_t bytes, bool persistent, size_t* reserved);
  // Returns a block: cached blocks to their free list, persistent ones to the driver.
  // Never throws (called from destructors); a failing cudaFree is remembered in lastError().
  void release(void* ptr, size_t reserved, bool persistent) noexcept;

  // cudaFree of every cached block (synchronizes the stream first).
  void emptyCache();
  // Teardown: cudaFree of every cached block without synchronizing or throwing (the
  // caller has synchronized).
  void dropCache() noexcept;
  AllocatorStats stats() const;
  int device() const { return device_; }
  FaultInjector& faults() { return faults_; }

  static size_t sizeClass(size_t bytes);

 private:
  void freeCachedLocked();  // mu_ held
  std::string oomMessage(size_t bytes) const;

  const int device_;
  const cudaStream_t stream_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // size class -> cached blocks
  AllocatorStats stats_;
  FaultInjector faults_;
};

// What every buffer of a backend keeps alive: the allocator and the stream its blocks
// are ordered on. Destroyed after the backend and its last buffer, whichever is later.
struct DeviceContext {
  DeviceContext(int device, cudaStream_t stream) : device(device), stream(stream), allocator(device, stream) {}
  ~DeviceContext();  // synchronizes and destroys the stream after the allocator's cache is freed
  const int device;
  const cudaStream_t stream;
  CachingAllocator allocator;
};

// Device memory of one tensor (or of the views sharing it).
class DeviceBuffer final : public Buffer {
 public:
  DeviceBuffer(std::shared_ptr<DeviceContext> ctx, size_t bytes, bool persistent);
  ~DeviceBuffer() override;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const override { return ptr_; }
  size_t bytes() const override { return bytes_; }

 private:
  std::shared_ptr<DeviceContext> ctx_;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;     // as requested
  size_t reserved_ = 0;  // as granted by the allocator
  bool persistent_ = false;
};

// A scratch block for the length of one op (index arrays, conversions): back to the
// cache at scope exit, which is safe because later users are ordered after this op.
class ScratchBlock {
 public:
  ScratchBlock() = default;
  ScratchBlock(CachingAllocator& a, size_t bytes) : alloc_(&a) { ptr_ = a.allocate(bytes, false, &reserved_); }
  ~ScratchBlock() { reset(); }
  ScratchBlock(ScratchBlock&& o) noexcept : alloc_(o.alloc_), ptr_(o.ptr_), reserved_(o.reserved_) {
    o.ptr_ = nullptr;
  }
  ScratchBlock& operator=(ScratchBlock&& o) noexcept {
    if (this != &o) {
      reset();
      alloc_ = o.alloc_;
      ptr_ = o.ptr_;
      reserved_ = o.reserved_;
      o.ptr_ = nullptr;
    }
    return *this;
  }
  ScratchBlock(const ScratchBlock&) = delete;
  ScratchBlock& operator=(const ScratchBlock&) = delete;

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t capacity() const { return reserved_; }
  void reset() {
    if (ptr_) alloc_->release(ptr_, reserved_, false);
    ptr_ = nullptr;
  }

 private:
  CachingAllocator* alloc_ = nullptr;
  void* ptr_ = nullptr;
  size_t reserved_ = 0;
};

// "1.50 GiB" style byte counts for messages.
std::string formatBytes(size_t bytes);

}  // namespace ivl::cuda
