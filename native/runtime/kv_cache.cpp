#include "runtime/kv_cache.h"

#include <new>

namespace ivl {

BlockAllocator::BlockAllocator(int64_t numBlocks) : numBlocks_(numBlocks), inUse_(size_t(numBlocks), 0) {
  free_.reserve(size_t(numBlocks));
  // Highest id at the bottom of the stack, so blocks are handed out 0, 1, 2, ...
  for (int64_t i = numBlocks - 1; i >= 0; --i) free_.push_back(int32_t(i));
}

std::vector<int32_t> BlockAllocator::allocate(int64_t n) {
  if (n > numFree()) {
    throw Error(ErrorCode::OutOfMemory, "KV cache out of blocks: " + std::to_string(n) + " needed, " +
                                            std::to_string(numFree()) + " of " + std::to_string(numBlocks_) +
                                            " free");
  }
  std::vector<int32_t> out;
  out.reserve(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    int32_t b = free_.back();
    free_.pop_back();
    inUse_[size_t(b)] = 1;
    out.push_back(b);
  }
  return out;
}

void BlockAllocator::release(const std::vector<int32_t>& blocks) {
  for (int32_t b : blocks) {
    if (b < 0 || b >= numBlocks_ || !inUse_[size_t(b)]) {
      throw Error(ErrorCode::Internal, "KV block " + std::to_string(b) + " released twice or never allocated");
    }
    inUse_[size_t(b)] = 0;
    free_.push_back(b);
  }
}

namespace {
int64_t checkedBlocks(int64_t capacityTokens, int64_t blockSize) {
  require(blockSize > 0, ErrorCode::InvalidArg, "KV block size must be positive");
  require(capacityTokens > 0, ErrorCode::InvalidArg, "KV cache capacity must be at least one token");
  return blocksFor(capacityTokens, blockSize);
}
}  // namespace

KvCache::KvCache(Backend& backend, int64_t numLayers, int64_t numKvHeads, int64_t headDim, int64_t blockSize,
                 int64_t capacityTokens)
    : KvCache(std::vector<Backend*>(size_t(numLayers), &backend), numKvHeads, headDim, blockSize, capacityTokens) {}

KvCache::KvCache(const std::vector<Backend*>& layerBackends, int64_t numKvHeads, int64_t headDim, int64_t blockSize,
                 int64_t capacityTokens)
    : blockSize_(blockSize), allocator_(checkedBlocks(capacityTokens, blockSize)) {
  const int64_t blocks = allocator_.numBlocks(), numLayers = int64_t(layerBackends.size());
  const DType dt = layerBackends.empty() ? DType::F32 : layerBackends[0]->activationDType();
  const Shape shape{blocks, blockSize, numKvHeads, headDim};
  try {
    for (Backend* b : layerBackends) layers_.push_back({b->alloc(dt, shape), b->alloc(dt, shape)});
  } catch (const std::bad_alloc&) {
    const double bytes = 2.0 * double(numLayers) * double(shapeNumel(shape)) * double(dtypeSize(dt));
    throw Error(ErrorCode::OutOfMemory, "cannot allocate the KV cache: " + std::to_string(blocks * blockSize) +
                                            " tokens need " + std::to_string(int64_t(bytes / (1 << 20))) +
                                            " MiB; lower kvCacheTokens");
  }
}

void SequenceKv::reserve(int64_t tokens) {
  const int64_t need = blocksFor(tokens, cache_->blockSize()) - int64_t(pages_.size());
  if (need <= 0) return;
  std::vector<int32_t> got = cache_->allocator().allocate(need);
  pages_.insert(pages_.end(), got.begin(), got.end());
}

void SequenceKv::append(int64_t n, std::vector<int64_t>& slots, std::vector<int32_t>& positions) {
  reserve(length_ + n);
  const int64_t bs = cache_->blockSize();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t pos = length_ + i;
    slots.push_back(int64_t(pages_[size_t(pos / bs)]) * bs + pos % bs);
    positions.push_back(int32_t(pos));
  }
  length_ += n;
}

void SequenceKv::truncate(int64_t tokens) {
  if (tokens >= length_) return;
  const size_t keep = size_t(blocksFor(tokens, cache_->blockSize()));
  if (keep < pages_.size()) {
    cache_->allocator().release(std::vector<int32_t>(pages_.begin() + std::ptrdiff_t(keep), pages_.end()));
    pages_.resize(keep);
  }
  length_ = tokens;
}

void SequenceKv::release() {
  if (!pages_.empty()) cache_->allocator().release(pages_);
  pages_.clear();
  length_ = 0;
}

PagedBatch buildBatch(int64_t blockSize, const std::vector<const SequenceKv*>& seqs,
                      const std::vector<int64_t>& newTokens, std::vector<int64_t> slots,
                      std::vector<int32_t> positions) {
  PagedBatch b;
  b.blockSize = blockSize;
  b.qoIndptr.push_back(0);
  b.kvIndptr.push_back(0);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const SequenceKv& s = *seqs[i];
    const int64_t usedPages = blocksFor(s.length(), blockSize);  // pages holding tokens (reserved ones excluded)
    b.qoIndptr.push_back(b.qoIndptr.back() + int32_t(newTokens[i]));
    b.kvIndices.insert(b.kvIndices.end(), s.pages().begin(), s.pages().begin() + usedPages);
    b.kvIndptr.push_back(int32_t(b.kvIndices.size()));
    b.kvLastPageLen.push_back(int32_t(s.length() - (usedPages - 1) * blockSize));
  }
  b.slots = std::move(slots);
  b.positions = std::move(positions);
  require(int64_t(b.positions.size()) == b.qoIndptr.back() && b.slots.size() == b.positions.size(),
          ErrorCode::Internal, "buildBatch: token counts disagree");
  return b;
}

}  // namespace ivl
