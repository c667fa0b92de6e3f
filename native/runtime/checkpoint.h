// A checkpoint directory as released: either one model.safetensors, or
// model.safetensors.index.json ({"weight_map": {tensor name: shard file}}) plus the
// shards it names. Every file is memory-mapped and its header validated when the
// checkpoint is opened; the index must name existing files, and every tensor it
// lists must be in the shard it points at. Tensors are looked up by name.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/safetensors.h"

namespace ivl {

// One tensor the model needs: its name and the shape the config implies.
struct ExpectedTensor {
  std::string name;
  Shape shape;
};

class Checkpoint {
 public:
  // Same preference as transformers: model.safetensors if present, else the index.
  static Checkpoint open(const std::string& dir);
  // Tensors that live elsewhere (--dummy-weights): `label` stands for the file in messages.
  static Checkpoint fromTensors(const std::string& label, std::vector<StoredTensor> tensors);

  const std::string& dir() const { return dir_; }
  // nullptr when no file holds the tensor.
  const StoredTensor* find(const std::string& name) const;
  // The file name (relative to dir) that holds a tensor, for messages.
  std::string fileOf(const std::string& name) const;

  // Checks, in order, that each expected tensor exists with exactly that shape and a
  // float dtype (F32/BF16/F16); throws ivl::Error(Checkpoint) for the first that does
  // not, naming it with expected vs actual shape.
  void requireAll(const std::vector<ExpectedTensor>& expected) const;

  // The tensor, after the same checks as requireAll for it alone.
  const StoredTensor& require(const std::string& name, const Shape& shape) const;

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const StoredTensor*> byName_;
  std::map<std::string, std::string> fileByName_;
  std::vector<std::shared_ptr<const StoredTensor>> owned_;  // fromTensors' tensors
};

}  // namespace ivl
