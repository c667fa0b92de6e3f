#include "runtime/dummy_weights.h"

#include <algorithm>

#include "runtime/mapped_file.h"
#include "runtime/weights.h"

namespace ivl {

Checkpoint dummyCheckpoint(const ModelSpec& spec, uint64_t seed) {
  // The names and shapes the loader will ask for (vocab from the config, head tied
  // exactly when the config ties it).
  const std::vector<ExpectedTensor> expected = expectedTensors(spec, Checkpoint::fromTensors("(dummy weights)", {}));
  size_t largest = 0;
  for (const ExpectedTensor& e : expected) largest = std::max(largest, size_t(shapeNumel(e.shape)) * 2);
  // Every tensor views one shared random region at its own offset: a 76B model needs
  // no more host memory than its largest tensor.
  const size_t spread = 64 << 20;
  auto region = MappedFile::synthetic(largest + spread, seed);
  std::vector<StoredTensor> tensors;
  tensors.reserve(expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    StoredTensor t;
    t.name = expected[i].name;
    t.dtypeName = "BF16";
    t.floatDType = DType::BF16;
    t.shape = expected[i].shape;
    t.bytes = size_t(shapeNumel(t.shape)) * 2;
    t.data = region->data() + ((i * 2654435761u) % (spread / 64)) * 64;
    t.file = region;
    tensors.push_back(std::move(t));
  }
  return Checkpoint::fromTensors("(dummy weights)", std::move(tensors));
}

}  // namespace ivl
