#include "cuda_alloc.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "check.h"

namespace ivl::cuda {

namespace {

// Makes `device` current for a scope (buffers can be released from any thread).
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&prev_) != cudaSuccess) {
      cudaGetLastError();
      prev_ = -1;
    }
    if (prev_ != device && cudaSetDevice(device) != cudaSuccess) cudaGetLastError();
  }
  ~DeviceScope() {
    int cur = -1;
    if (prev_ >= 0 && cudaGetDevice(&cur) == cudaSuccess && cur != prev_) cudaSetDevice(prev_);
  }

 private:
  int prev_ = -1;
};

}  // namespace

std::string formatBytes(size_t bytes) {
  char buf[64];
  const double b = double(bytes);
  if (bytes >= (size_t(1) << 30)) {
    snprintf(buf, sizeof buf, "%.2f GiB", b / double(size_t(1) << 30));
  } else if (bytes >= (size_t(1) << 20)) {
    snprintf(buf, sizeof buf, "%.2f MiB", b / double(size_t(1) << 20));
  } else if (bytes >= 1024) {
    snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  } else {
    snprintf(buf, sizeof buf, "%zu B", bytes);
  }
  return buf;
}

size_t CachingAllocator::sizeClass(size_t bytes) {
  constexpr size_t kMin = 512;
  constexpr size_t kLarge = size_t(16) << 20;
  constexpr size_t kLargeStep = size_t(2) << 20;
  if (bytes <= kMin) return kMin;
  if (bytes >= kLarge) return (bytes + kLargeStep - 1) / kLargeStep * kLargeStep;
  // 8 steps between consecutive powers of two: step = 2^(floor(log2(bytes - 1)) - 3).
  size_t pow2 = kMin;
  while (pow2 * 2 < bytes) pow2 *= 2;  // pow2 < bytes <= 2·pow2
  const size_t step = pow2 / 8;
  return (bytes + step - 1) / step * step;
}

CachingAllocator::CachingAllocator(int device, cudaStream_t stream) : device_(device), stream_(stream) {
  const FaultPlan pending = takePendingFaultPlan();
  const char* plan = std::getenv("INTERNVL_CUDA_FAULT");
  if (pending.kind != FaultKind::None) {
    faults_.arm(pending);
  } else if (plan) {
    faults_.arm(parseFaultPlan(plan, "INTERNVL_CUDA_FAULT"));
  }
}

CachingAllocator::~CachingAllocator() { dropCache(); }

void CachingAllocator::dropCache() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.empty()) return;
  DeviceScope scope(device_);
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) {
      if (cudaFree(p) != cudaSuccess) cudaGetLastError();  // teardown: errors have nowhere to go
    }
  }
  free_.clear();
  stats_.cachedBytes = 0;
}

std::string CachingAllocator::oomMessage(size_t bytes) const {
  size_t freeB = 0, totalB = 0;
  if (cudaMemGetInfo(&freeB, &totalB) != cudaSuccess) cudaGetLastError();
  return "CUDA device " + std::to_string(device_) + " is out of memory: " + formatBytes(bytes) +
         " requested, " + formatBytes(freeB) + " free of " + formatBytes(totalB) + " (this backend holds " +
         formatBytes(stats_.inUseBytes + stats_.cachedBytes) + ", " + formatBytes(stats_.persistentBytes) +
         " of it weights)";
}

void CachingAllocator::freeCachedLocked() {
  if (free_.empty()) return;
  // Cached blocks may still be read by queued kernels: wait for them before the driver
  // gets the memory back.
  IVL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) {
      IVL_CUDA_CHECK(cudaFree(p));
      stats_.cachedBytes -= size;
    }
  }
  free_.clear();
}

void* CachingAllocator::allocate(size_t bytes, bool persistent, size_t* reserved) {
  *reserved = 0;
  if (bytes == 0) return nullptr;
  const size_t size = persistent ? (bytes + 255) / 256 * 256 : sizeClass(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (faults_.shouldFail(FaultKind::OutOfMemory)) {
    throw Error(ErrorCode::OutOfMemory, oomMessage(size) + " [injected by the fault hook]");
  }
  if (!persistent) {
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      stats_.cachedBytes -= size;
      stats_.inUseBytes += size;
      stats_.peakInUseBytes = std::max(stats_.peakInUseBytes, stats_.inUseBytes);
      ++stats_.cacheHits;
      *reserved = size;
      return p;
    }
  }
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, size);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // an allocation failure is not sticky: clear it and retry once
    freeCachedLocked();
    err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw Error(ErrorCode::OutOfMemory, oomMessage(size));
    }
  }
  if (err != cudaSuccess) throwCuda(err, "cudaMalloc", __FILE__, __LINE__);
  ++stats_.deviceMallocs;
  stats_.inUseBytes += size;
  if (persistent) stats_.persistentBytes += size;
  stats_.peakInUseBytes = std::max(stats_.peakInUseBytes, stats_.inUseBytes);
  *reserved = size;
  return p;
}

void CachingAllocator::release(void* ptr, size_t reserved, bool persistent) noexcept {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  stats_.inUseBytes -= reserved;
  if (persistent) {
    stats_.persistentBytes -= reserved;
    DeviceScope scope(device_);
    // cudaFree waits for the device, so kernels still reading the weight finish first.
    if (cudaFree(ptr) != cudaSuccess) cudaGetLastError();
    return;
  }
  try {
    free_[reserved].push_back(ptr);
    stats_.cachedBytes += reserved;
  } catch (...) {  // no memory for the free list itself: give the block to the driver
    DeviceScope scope(device_);
    if (cudaFree(ptr) != cudaSuccess) cudaGetLastError();
  }
}

void CachingAllocator::emptyCache() {
  std::lock_guard<std::mutex> lock(mu_);
  freeCachedLocked();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

DeviceContext::~DeviceContext() {
  DeviceScope scope(device);
  cudaStreamSynchronize(stream);
  allocator.dropCache();  // before the stream goes: nothing can be queued on it any more
  cudaStreamDestroy(stream);
  cudaGetLastError();
}

DeviceBuffer::DeviceBuffer(std::shared_ptr<DeviceContext> ctx, size_t bytes, bool persistent)
    : ctx_(std::move(ctx)), bytes_(bytes), persistent_(persistent) {
  ptr_ = ctx_->allocator.allocate(bytes, persistent, &reserved_);
}

DeviceBuffer::~DeviceBuffer() { ctx_->allocator.release(ptr_, reserved_, persistent_); }

}  // namespace ivl::cuda
