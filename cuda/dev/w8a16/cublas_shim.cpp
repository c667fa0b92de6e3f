#include "cublas_shim.h"

#include <dlfcn.h>
#include <library_types.h>  // cudaDataType (CUDA_R_16BF): part of the CUDA runtime headers

namespace lab {
namespace {
// From cublas_api.h (CUDA 12/13): enum values fixed by the cuBLAS ABI.
constexpr int kOpN = 0, kOpT = 1;        // cublasOperation_t
constexpr int kCompute32F = 68;          // cublasComputeType_t CUBLAS_COMPUTE_32F
constexpr int kGemmDefault = -1;         // cublasGemmAlgo_t CUBLAS_GEMM_DEFAULT
using CreateFn = int (*)(void**);
using DestroyFn = int (*)(void*);
using GetVersionFn = int (*)(void*, int*);
using SetStreamFn = int (*)(void*, cudaStream_t);
using GemmExFn = int (*)(void*, int, int, int, int, int, const void*, const void*, int, int, const void*, int, int,
                         const void*, void*, int, int, int, int);
}  // namespace

CublasBf16::CublasBf16() {
  const char* names[] = {"libcublas.so.13", "/usr/local/cuda/lib64/libcublas.so.13", "libcublas.so.12",
                         "libcublas.so"};
  for (const char* name : names) {
    lib_ = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib_ != nullptr) break;
  }
  if (lib_ == nullptr) {
    const char* e = dlerror();
    why_ = std::string("dlopen libcublas failed: ") + (e ? e : "?");
    return;
  }
  auto create = reinterpret_cast<CreateFn>(dlsym(lib_, "cublasCreate_v2"));
  auto getVersion = reinterpret_cast<GetVersionFn>(dlsym(lib_, "cublasGetVersion_v2"));
  setStream_ = dlsym(lib_, "cublasSetStream_v2");
  gemmEx_ = dlsym(lib_, "cublasGemmEx");
  destroy_ = dlsym(lib_, "cublasDestroy_v2");
  if (!create || !setStream_ || !gemmEx_ || !destroy_) {
    why_ = "libcublas lacks an expected symbol";
    return;
  }
  void* h = nullptr;
  const int st = create(&h);
  if (st != 0) {
    why_ = "cublasCreate failed with status " + std::to_string(st);
    return;
  }
  handle_ = h;
  if (getVersion) getVersion(handle_, &version_);
}

CublasBf16::~CublasBf16() {
  if (handle_ != nullptr) reinterpret_cast<DestroyFn>(destroy_)(handle_);
  // The library stays loaded: unloading cuBLAS at exit gains nothing.
}

int CublasBf16::gemm(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, int m, int n, int k,
                     cudaStream_t stream) {
  const int st = reinterpret_cast<SetStreamFn>(setStream_)(handle_, stream);
  if (st != 0) return st;
  const float alpha = 1.f, beta = 0.f;
  // Column-major view: Y^T [n x m] = (W [k x n])^T · X^T [k x m].
  return reinterpret_cast<GemmExFn>(gemmEx_)(handle_, kOpT, kOpN, n, m, k, &alpha, w, CUDA_R_16BF, k, x,
                                             CUDA_R_16BF, k, &beta, y, CUDA_R_16BF, n, kCompute32F,
                                             kGemmDefault);
}

}  // namespace lab
