#include "runtime/fault_injection.h"

#include <cerrno>
#include <cstdlib>
#include <utility>

#include "runtime/error.h"

namespace ivl {

FaultPlan parseFaultPlan(const std::string& text, const std::string& source) {
  FaultPlan p;
  if (text.empty() || text == "none") return p;
  auto bad = [&]() {
    return Error(ErrorCode::InvalidArg, source + " is '" + text +
                                            "', which is not a fault plan (expected 'oom-after=N', "
                                            "'error-after=N' or 'none', N an integer >= 0)");
  };
  const size_t eq = text.find('=');
  if (eq == std::string::npos) throw bad();
  const std::string name = text.substr(0, eq), count = text.substr(eq + 1);
  if (name == "oom-after") {
    p.kind = FaultKind::OutOfMemory;
  } else if (name == "error-after") {
    p.kind = FaultKind::DeviceError;
  } else {
    throw bad();
  }
  if (count.empty() || count.size() > 15 || count.find_first_not_of("0123456789") != std::string::npos) throw bad();
  p.after = std::strtoll(count.c_str(), nullptr, 10);
  return p;
}

std::string describeFaultPlan(const FaultPlan& plan) {
  switch (plan.kind) {
    case FaultKind::None: return "none";
    case FaultKind::OutOfMemory: return "oom-after=" + std::to_string(plan.after);
    case FaultKind::DeviceError: return "error-after=" + std::to_string(plan.after);
  }
  return "none";
}

namespace {
std::mutex pendingMu;
FaultPlan pendingPlan;  // guarded by pendingMu
}  // namespace

void setPendingFaultPlan(const FaultPlan& plan) {
  std::lock_guard<std::mutex> lock(pendingMu);
  pendingPlan = plan;
}

FaultPlan takePendingFaultPlan() {
  std::lock_guard<std::mutex> lock(pendingMu);
  return std::exchange(pendingPlan, FaultPlan{});
}

void FaultInjector::arm(const FaultPlan& plan) {
  std::lock_guard<std::mutex> lock(mu_);
  left_ = plan.after;
  kind_.store(int(plan.kind), std::memory_order_release);
}

FaultPlan FaultInjector::plan() const {
  std::lock_guard<std::mutex> lock(mu_);
  return FaultPlan{FaultKind(kind_.load(std::memory_order_acquire)), left_};
}

bool FaultInjector::shouldFail(FaultKind kind) {
  if (kind_.load(std::memory_order_relaxed) != int(kind)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  if (kind_.load(std::memory_order_relaxed) != int(kind)) return false;  // disarmed meanwhile
  if (left_ > 0) {
    --left_;
    return false;
  }
  kind_.store(int(FaultKind::None), std::memory_order_relaxed);
  fired_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace ivl
