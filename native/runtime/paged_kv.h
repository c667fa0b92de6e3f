// The paged KV cache layout, as the backends see it (FlashInfer-style CSR).
//
// Storage, per decoder layer (NHD page layout):
//   k, v : [numBlocks, blockSize, numKvHeads, headDim]   activation dtype
// Token j of a sequence lives in page indices[indptr[b] + j / blockSize], row j % blockSize.
// K is stored after RoPE, V as projected.
//
// One forward step over a ragged batch of B sequences and T new tokens in all:
//   qoIndptr      [B+1]  queries of sequence b are rows qoIndptr[b] .. qoIndptr[b+1]-1 of q/out
//   kvIndptr      [B+1]  pages of sequence b are kvIndices[kvIndptr[b] .. kvIndptr[b+1])
//   kvIndices     [nnz]  page ids, in sequence order
//   kvLastPageLen [B]    valid tokens in each sequence's last page (1..blockSize), counting this step
//   positions     [T]    position of each new token in its sequence (0-based)
//   slots         [T]    where each new token's K/V goes: page * blockSize + row
// Attention is causal: the query at position p sees kv positions 0..p of its own sequence.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/tensor.h"

namespace ivl {

struct KvLayer {
  Tensor k;  // [numBlocks, blockSize, numKvHeads, headDim]
  Tensor v;  // [numBlocks, blockSize, numKvHeads, headDim]
};

struct PagedBatch {
  int64_t blockSize = 0;
  std::vector<int32_t> qoIndptr;       // [B+1]
  std::vector<int32_t> kvIndptr;       // [B+1]
  std::vector<int32_t> kvIndices;      // [nnz]
  std::vector<int32_t> kvLastPageLen;  // [B]
  std::vector<int32_t> positions;      // [T]
  std::vector<int64_t> slots;          // [T]

  int64_t numSequences() const { return int64_t(kvLastPageLen.size()); }
  int64_t numTokens() const { return int64_t(positions.size()); }
  // Tokens of sequence b in the cache (after this step's writes).
  int64_t kvLength(int64_t b) const {
    int64_t pages = kvIndptr[b + 1] - kvIndptr[b];
    return pages == 0 ? 0 : (pages - 1) * blockSize + kvLastPageLen[b];
  }
};

}  // namespace ivl
