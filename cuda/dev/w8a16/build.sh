#!/usr/bin/env bash
# Builds the lab binary into build/ (the production kernels compiled in from cuda/). Works on a
# machine without cuBLAS: cuBLAS is dlopen'ed at run time (cublas_shim.cpp). TRACE=1 builds
# build/w8a16-trace instead, with the kernels' block timeline compiled in (cuda/kernel_trace.h,
# W8A16_LAB_TRACE in the layer chain); its timings carry that instrumentation.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=../../..
mkdir -p build
OBJ=build/obj${TRACE:+-trace}
mkdir -p "$OBJ"
NVCC=${NVCC:-nvcc}
FLAGS="${TRACE:+-DIVL_KERNEL_TRACE }-std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -lineinfo -I$ROOT/cuda -I$ROOT/native"
pids=()
for src in $ROOT/cuda/gemm_w8a16.cu $ROOT/cuda/quantize_int8.cu $ROOT/cuda/norm.cu $ROOT/cuda/elementwise.cu \
    $ROOT/cuda/qkv_rope_append.cu $ROOT/cuda/paged_attention_decode.cu $ROOT/cuda/gemv_bf16.cu w8a16.cu cublas_shim.cpp; do
  obj=$OBJ/$(basename "$src").o
  $NVCC $FLAGS -c "$src" -o "$obj" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
BIN=build/w8a16${TRACE:+-trace}
$NVCC $FLAGS "$OBJ"/*.o -o "$BIN" -ldl
echo "built $(pwd)/$BIN"
