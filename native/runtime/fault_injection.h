// Test-only fault injection: a backend asks its FaultInjector at every allocation (and the
// CUDA backend at every op) whether this one should fail. Real out-of-memory and device
// errors cannot be provoked at a chosen point of a batch, so the recovery paths (the
// scheduler shedding a request on ERR_OOM, a model poisoned by a CUDA error while another
// keeps working) would otherwise go untested.
//
// Plans (the text form is what INTERNVL_CUDA_FAULT and the addon's __testing.armFault take):
//   "oom-after=N"    the first N allocations after arming succeed, the next one throws
//                    ERR_OOM as a failed cudaMalloc (or a full host heap) would
//   "error-after=N"  the first N ops after arming run, the next one throws ERR_CUDA as a
//                    failed kernel launch would (CUDA backend only)
//   "" / "none"      disarmed
// A plan fires once, then the injector disarms itself: the retry a recovery path makes
// succeeds, as it would after a transient shortage.
//
// Disarmed, shouldFail() is one relaxed atomic load: the hook stays in release builds.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace ivl {

enum class FaultKind { None = 0, OutOfMemory = 1, DeviceError = 2 };

struct FaultPlan {
  FaultKind kind = FaultKind::None;
  int64_t after = 0;  // events of that kind that pass before the one that fails
};

// Parses a plan (see above); anything else throws ivl::Error(InvalidArg) naming `source`.
FaultPlan parseFaultPlan(const std::string& text, const std::string& source);
std::string describeFaultPlan(const FaultPlan& plan);

// A plan the next CUDA allocator takes when it is made, ahead of INTERNVL_CUDA_FAULT (the
// addon's __testing.armNextLoad): how a test fails a load part way through its weights. The
// environment variable cannot do it from a jest test, whose process.env is a sandbox copy
// that never reaches getenv. Taking it disarms it, so only the next load is affected.
void setPendingFaultPlan(const FaultPlan& plan);
FaultPlan takePendingFaultPlan();

class FaultInjector {
 public:
  void arm(const FaultPlan& plan);
  void disarm() { arm(FaultPlan{}); }
  FaultPlan plan() const;
  // Counts one event of `kind`; true (once) when it is the event the plan fails.
  bool shouldFail(FaultKind kind);
  // Plans fired since construction (tests check that the fault did happen).
  int64_t fired() const { return fired_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int> kind_{int(FaultKind::None)};
  mutable std::mutex mu_;
  int64_t left_ = 0;  // guarded by mu_
  std::atomic<int64_t> fired_{0};
};

}  // namespace ivl
