// The paged KV cache: storage for every decoder layer (layout in paged_kv.h), a
// free-list block allocator, and per-sequence page lists that give their blocks
// back when they go out of scope.
//
//   KvCache         owns k/v [numBlocks, blockSize, numKvHeads, headDim] per layer
//   BlockAllocator  LIFO free list of block ids; all-or-nothing allocation
//   SequenceKv      one sequence's pages (its row of the CSR block table) + length
//   buildBatch      the CSR metadata (PagedBatch) for one forward step
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/backend.h"
#include "runtime/paged_kv.h"

namespace ivl {

class BlockAllocator {
 public:
  explicit BlockAllocator(int64_t numBlocks);

  int64_t numBlocks() const { return numBlocks_; }
  int64_t numFree() const { return int64_t(free_.size()); }

  // n block ids, or ivl::Error(OutOfMemory) with the numbers if fewer are free
  // (nothing is taken then).
  std::vector<int32_t> allocate(int64_t n);
  // Returns blocks to the free list. Throws Internal on a double free.
  void release(const std::vector<int32_t>& blocks);

 private:
  int64_t numBlocks_;
  std::vector<int32_t> free_;   // stack of free block ids
  std::vector<uint8_t> inUse_;  // [numBlocks] 1 while allocated
};

class KvCache {
 public:
  // Room for capacityTokens tokens (rounded up to whole blocks) in every layer.
  KvCache(Backend& backend, int64_t numLayers, int64_t numKvHeads, int64_t headDim, int64_t blockSize,
          int64_t capacityTokens);
  // Layer i's pages on layerBackends[i] (a model split across devices). Block ids are shared:
  // a sequence's page table addresses the same blocks in every layer, wherever it lives.
  KvCache(const std::vector<Backend*>& layerBackends, int64_t numKvHeads, int64_t headDim, int64_t blockSize,
          int64_t capacityTokens);

  int64_t blockSize() const { return blockSize_; }
  int64_t numBlocks() const { return allocator_.numBlocks(); }
  int64_t capacityTokens() const { return numBlocks() * blockSize_; }
  const KvLayer& layer(int64_t i) const { return layers_.at(size_t(i)); }
  BlockAllocator& allocator() { return allocator_; }

 private:
  int64_t blockSize_;
  std::vector<KvLayer> layers_;
  BlockAllocator allocator_;
};

// One sequence's pages, in order, and how many tokens they hold.
class SequenceKv {
 public:
  explicit SequenceKv(KvCache& cache) : cache_(&cache) {}
  ~SequenceKv() {
    try {
      release();
    } catch (...) {  // release only throws on allocator corruption; never from a destructor
    }
  }
  SequenceKv(SequenceKv&& o) noexcept : cache_(o.cache_), pages_(std::move(o.pages_)), length_(o.length_) {
    o.pages_.clear();
    o.length_ = 0;
  }
  SequenceKv(const SequenceKv&) = delete;
  SequenceKv& operator=(const SequenceKv&) = delete;
  SequenceKv& operator=(SequenceKv&&) = delete;

  int64_t length() const { return length_; }
  const std::vector<int32_t>& pages() const { return pages_; }
  int64_t capacity() const { return int64_t(pages_.size()) * cache_->blockSize(); }

  // Ensures pages for `tokens` tokens in all (throws OutOfMemory, taking nothing).
  void reserve(int64_t tokens);
  // Claims the next n token slots (reserving pages if needed): appends their slot
  // ids (page · blockSize + row) to slots and their positions to positions.
  void append(int64_t n, std::vector<int64_t>& slots, std::vector<int32_t>& positions);
  // Keeps the first `tokens` tokens (their pages) and gives the rest back: a cached prefix
  // taken over by a new sequence that matches only part of it.
  void truncate(int64_t tokens);
  // Forgets the tokens after the first `tokens`, keeping every page (reserved room stays
  // reserved): a failed step's claimed slots, written again when the step is retried.
  void rewind(int64_t tokens) {
    if (tokens >= 0 && tokens < length_) length_ = tokens;
  }
  // Gives every page back.
  void release();

 private:
  KvCache* cache_;
  std::vector<int32_t> pages_;
  int64_t length_ = 0;
};

// Pages needed to hold `tokens` tokens.
inline int64_t blocksFor(int64_t tokens, int64_t blockSize) { return (tokens + blockSize - 1) / blockSize; }

// The CSR metadata for one step in which sequence i gained newTokens[i] tokens
// (already appended with SequenceKv::append, whose slots/positions are passed in).
PagedBatch buildBatch(int64_t blockSize, const std::vector<const SequenceKv*>& seqs,
                      const std::vector<int64_t>& newTokens, std::vector<int64_t> slots,
                      std::vector<int32_t> positions);

}  // namespace ivl
