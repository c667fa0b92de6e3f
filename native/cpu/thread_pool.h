// A small fixed thread pool with one operation: parallelFor over [0, n).
// The calling thread works too, so a pool of size 1 has no worker threads.
// Each index range is handed to exactly one thread and every output the CPU
// kernels write is computed by one thread in a fixed order, so results never
// depend on the number of threads.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ivl::cpu {

class ThreadPool {
 public:
  // threads <= 0: std::thread::hardware_concurrency().
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint chunks covering [0, n), at least `grain` indices
  // per chunk (except the last), and returns when all are done. The first exception
  // thrown by fn is rethrown here after every chunk has finished or been skipped.
  void parallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

 private:
  void workerLoop();
  void runChunks();

  std::vector<std::thread> workers_;
  std::mutex callMutex_;  // one parallelFor at a time

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  uint64_t generation_ = 0;  // bumped for each job
  bool stop_ = false;
  int busy_ = 0;  // workers still inside the current job

  // The current job (valid while busy_ > 0 or the caller runs it).
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  int64_t next_ = 0;  // next unclaimed index, guarded by mutex_
  std::exception_ptr error_;
};

}  // namespace ivl::cpu
