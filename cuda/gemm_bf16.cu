#include "gemm_bf16.h"

#include <cublasLt.h>
#include <cublas_v2.h>

#include <map>
#include <string>
#include <tuple>

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

  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  IVL_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, plan->desc, plan->a, plan->b, plan->c, plan->c, pref, 1,
                                                  &result, &returned));
  if (returned == 0) {
    throw ivl::Error(ivl::ErrorCode::Cuda, "cuBLASLt has no bf16 algorithm for y[" + std::to_string(M) + ", " +
                                               std::to_string(N) + "] = x[" + std::to_string(M) + ", " +
                                               std::to_string(K) + "] · wᵀ" + (hasBias ? " + bias" : ""));
  }
  plan->algo = result.algo;
  return plan;
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
  const float alpha = 1.0f, beta = 0.0f;
  IVL_CUBLAS_CHECK(cublasLtMatmul(impl_->handle, plan.desc, &alpha, w, plan.a, x, plan.b, &beta, y, plan.c, y,
                                  plan.c, &plan.algo, impl_->workspace, impl_->workspaceBytes, impl_->stream));
}

}  // namespace ivl::cuda
