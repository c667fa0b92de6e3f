#!/usr/bin/env bash
# Builds the lab binary into build/ (the production kernels compiled in from cuda/). Works on a
# machine without cuBLAS: cuBLAS is dlopen'ed at run time (cublas_shim.cpp).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=../../..
mkdir -p build
NVCC=${NVCC:-nvcc}
FLAGS="-std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -lineinfo -I$ROOT/cuda -I$ROOT/native"
pids=()
for src in $ROOT/cuda/gemm_w8a16.cu $ROOT/cuda/quantize_int8.cu $ROOT/cuda/norm.cu $ROOT/cuda/elementwise.cu \
    $ROOT/cuda/qkv_rope_append.cu $ROOT/cuda/paged_attention_decode.cu $ROOT/cuda/gemv_bf16.cu w8a16.cu cublas_shim.cpp; do
  obj=build/$(basename "$src").o
  $NVCC $FLAGS -c "$src" -o "$obj" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
$NVCC $FLAGS build/*.o -o build/w8a16 -ldl
echo "built $(pwd)/build/w8a16"
