#include "gemm_bf16.h"

#include <cublasLt.h>
#include <cublas_v2.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "check.h"

namespace ivl::cuda {

namespace {

[[noreturn]] void throwCublas(cublasStatus_t st, const char* what, const char* file, int line) {
  const char* name = cublasLtGetStatusName(st);
  std::string msg = std::string(what) + " failed: " + (name ? name : "unknown cuBLAS status") + " (" +
                    std::to_string(int(st)) + ") at " + file + ":" + std::to_string(line);
  throw ivl::Error(st == CUBLAS_STATUS_ALLOC_FAILED ? ivl::ErrorCode::OutOfMemory : ivl::ErrorCode::Cuda, msg);
}

#define IVL_CUBLAS_CHECK(call)                                                     \
  do {                                                                             \
    cublasStatus_t ivl_st_ = (call);                                               \
    if (ivl_st_ != CUBLAS_STATUS_SUCCESS) throwCublas(ivl_st_, #call, __FILE__, __LINE__); \
  } while (0)

// Largest power of two (<= 256) dividing the address: what cuBLASLt may assume.
uint32_t alignmentOf(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

// Descriptors + chosen algorithm for one problem.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool bias = false;
  // Decode-sized problems (M <= kTuneMaxM): the heuristic's other candidates, timed on the
  // first call, which then keeps the fastest (algo) and drops the list.
  std::vector<cublasLtMatmulAlgo_t> candidates;

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

// The heuristic's first choice for a skinny product (a decode step's M = batch rows) is often
// not its fastest: measured on the H200 in the 8B decode step, cuBLASLt picked split-K kernels
// plus a separate reduction for half of the matrices. Up to kTuneCandidates are timed once per
// shape; INTERNVL_CUDA_GEMM_AUTOTUNE=0 keeps the first choice (A/B in one benchmark run).
constexpr int64_t kTuneMaxM = 32;
constexpr int kTuneCandidates = 8;
bool autotuneEnabled() {
  static const bool on = [] {
    const char* v = std::getenv("INTERNVL_CUDA_GEMM_AUTOTUNE");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

// M, N, K, bias, and alignments of y, x, w, bias.
using PlanKey = std::tuple<int64_t, int64_t, int64_t, bool, uint32_t, uint32_t, uint32_t, uint32_t>;

}  // namespace

struct GemmBf16::Impl {
  cudaStream_t stream;
  void* workspace;
  size_t workspaceBytes;
  cublasLtHandle_t handle = nullptr;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;

  std::unique_ptr<Plan> makePlan(const PlanKey& key, const __nv_bfloat16* bias);
  void matmul(Plan& plan, const cublasLtMatmulAlgo_t& algo, __nv_bfloat16* y, const __nv_bfloat16* x,
              const __nv_bfloat16* w);
  void tune(Plan& plan, __nv_bfloat16* y, const __nv_bfloat16* x, const __nv_bfloat16* w);
};

GemmBf16::GemmBf16(cudaStream_t stream, void* workspace, size_t workspaceBytes) : impl_(new Impl) {
  impl_->stream = stream;
  impl_->workspace = workspace;
  impl_->workspaceBytes = workspaceBytes;
  IVL_CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
}

GemmBf16::~GemmBf16() {
  impl_->plans.clear();
  if (impl_->handle) cublasLtDestroy(impl_->handle);
}

size_t GemmBf16::cachedPlans() const { return impl_->plans.size(); }

std::unique_ptr<Plan> GemmBf16::Impl::makePlan(const PlanKey& key, const __nv_bfloat16* bias) {
  const auto [M, N, K, hasBias, alY, alX, alW, alBias] = key;
  auto plan = std::make_unique<Plan>();
  plan->bias = hasBias;
  // Column-major view: yᵀ[N, M] = w[N, K] · xᵀ[K, M], i.e. D(m=N, n=M) = op(A)·B with
  // A = w stored col-major [K, N] (ld K) and op T; B = x col-major [K, M] (ld K); D ld N.
  IVL_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
  IVL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof opT));
  IVL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof opN));
  if (hasBias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    IVL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    const int32_t biasType = CUDA_R_16BF;  // the output's type (see the header)
    IVL_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &biasType, sizeof biasType));
    // The heuristic reads the pointer's alignment; the pointer itself is set per call.
    IVL_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  }
  IVL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, CUDA_R_16BF, uint64_t(K), uint64_t(N), K));
  IVL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, CUDA_R_16BF, uint64_t(K), uint64_t(M), K));
  IVL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->c, CUDA_R_16BF, uint64_t(N), uint64_t(M), N));

  cublasLtMatmulPreference_t pref = nullptr;
  IVL_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  struct PrefGuard {
    cublasLtMatmulPreference_t p;
    ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
  } prefGuard{pref};
  const uint64_t ws = workspaceBytes;
  IVL_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  // A = w, B = x, C = D = y.
  IVL_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &alW, sizeof alW));
  IVL_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alX, sizeof alX));
  IVL_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alY, sizeof alY));
  IVL_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alY, sizeof alY));
  (void)alBias;

  const int wanted = M <= kTuneMaxM && autotuneEnabled() ? kTuneCandidates : 1;
  cublasLtMatmulHeuristicResult_t results[kTuneCandidates]{};
  int returned = 0;
  IVL_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, plan->desc, plan->a, plan->b, plan->c, plan->c, pref,
                                                  wanted, results, &returned));
  if (returned == 0) {
    throw ivl::Error(ivl::ErrorCode::Cuda, "cuBLASLt has no bf16 algorithm for y[" + std::to_string(M) + ", " +
                                               std::to_string(N) + "] = x[" + std::to_string(M) + ", " +
                                               std::to_string(K) + "] · wᵀ" + (hasBias ? " + bias" : ""));
  }
  plan->algo = results[0].algo;
  if (returned > 1) {
    for (int i = 0; i < returned; ++i) plan->candidates.push_back(results[i].algo);
  }
  return plan;
}

void GemmBf16::Impl::matmul(Plan& plan, const cublasLtMatmulAlgo_t& algo, __nv_bfloat16* y, const __nv_bfloat16* x,
                            const __nv_bfloat16* w) {
  const float alpha = 1.0f, beta = 0.0f;
  IVL_CUBLAS_CHECK(cublasLtMatmul(handle, plan.desc, &alpha, w, plan.a, x, plan.b, &beta, y, plan.c, y, plan.c,
                                  &algo, workspace, workspaceBytes, stream));
}

// Times each candidate on the call's own operands (y is rewritten with the same values: beta
// is 0): one warm-up round, then three rounds taking turns, so every candidate finds the
// weights as warm in L2 as the others did. A candidate that fails to run is skipped.
void GemmBf16::Impl::tune(Plan& plan, __nv_bfloat16* y, const __nv_bfloat16* x, const __nv_bfloat16* w) {
  std::vector<cublasLtMatmulAlgo_t> cands = std::move(plan.candidates);
  plan.candidates.clear();
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  IVL_CUDA_CHECK(cudaEventCreate(&e0));
  struct EventGuard {
    cudaEvent_t& a;
    cudaEvent_t& b;
    ~EventGuard() {
      if (a) cudaEventDestroy(a);
      if (b) cudaEventDestroy(b);
    }
  } guard{e0, e1};
  IVL_CUDA_CHECK(cudaEventCreate(&e1));
  std::vector<float> total(cands.size(), 0.f);
  std::vector<bool> ok(cands.size(), true);
  for (int round = 0; round < 4; ++round) {
    for (size_t i = 0; i < cands.size(); ++i) {
      if (!ok[i]) continue;
      IVL_CUDA_CHECK(cudaEventRecord(e0, stream));
      const float alpha = 1.0f, beta = 0.0f;
      const cublasStatus_t st = cublasLtMatmul(handle, plan.desc, &alpha, w, plan.a, x, plan.b, &beta, y, plan.c, y,
                                               plan.c, &cands[i], workspace, workspaceBytes, stream);
      IVL_CUDA_CHECK(cudaEventRecord(e1, stream));
      IVL_CUDA_CHECK(cudaEventSynchronize(e1));
      if (st != CUBLAS_STATUS_SUCCESS) {
        if (i == 0) IVL_CUBLAS_CHECK(st);  // the heuristic's own choice must run
        ok[i] = false;
        continue;
      }
      float ms = 0.f;
      IVL_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
      if (round > 0) total[i] += ms;
    }
  }
  size_t best = 0;
  for (size_t i = 1; i < cands.size(); ++i) {
    if (ok[i] && total[i] < total[best]) best = i;
  }
  plan.algo = cands[best];
}

void GemmBf16::run(__nv_bfloat16* y, const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias,
                   int64_t M, int64_t N, int64_t K) {
  if (M == 0 || N == 0) return;
  const PlanKey key{M, N, K, bias != nullptr, alignmentOf(y), alignmentOf(x), alignmentOf(w),
                    bias ? alignmentOf(bias) : 0u};
  auto it = impl_->plans.find(key);
  if (it == impl_->plans.end()) it = impl_->plans.emplace(key, impl_->makePlan(key, bias)).first;
  Plan& plan = *it->second;
  if (plan.bias) {
    IVL_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  }
  if (!plan.candidates.empty()) impl_->tune(plan, y, x, w);
  impl_->matmul(plan, plan.algo, y, x, w);
}

}  // namespace ivl::cuda
