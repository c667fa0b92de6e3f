// safetensors files: [u64 little-endian header length N][N bytes of JSON header]
// [data]. The header maps tensor names to {dtype, shape, data_offsets [begin, end)}
// relative to the start of data, plus an optional "__metadata__" string map.
// Everything is validated before a byte of data is trusted:
//   - the 8-byte length fits in the file, the header is a JSON object;
//   - every entry has a known dtype, a shape of non-negative integers and two
//     integer offsets with begin <= end <= data size;
//   - end - begin == numel(shape) * sizeof(dtype);
//   - no two tensors' byte ranges overlap.
// Any failure is ivl::Error(Checkpoint) naming the file (and the tensor).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/mapped_file.h"
#include "runtime/tensor.h"

namespace ivl {

// One tensor as stored: points into the file's mapping, which it keeps alive.
struct StoredTensor {
  std::string name;
  std::string dtypeName;            // as written in the header: "BF16", "F32", "I64", ...
  std::optional<DType> floatDType;  // F32 / BF16 / F16; empty for integer/bool/fp8/f64 tensors
  Shape shape;
  const uint8_t* data = nullptr;  // [numel(shape)] elements of dtypeName, maybe unaligned
  size_t bytes = 0;
  std::shared_ptr<MappedFile> file;

  int64_t numel() const { return shapeNumel(shape); }
};

class SafetensorsFile {
 public:
  // Maps and validates path; displayName is how errors name the file.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path, const std::string& displayName);

  const std::string& displayName() const { return displayName_; }
  const std::map<std::string, StoredTensor>& tensors() const { return tensors_; }
  const StoredTensor* find(const std::string& name) const;

 private:
  std::string displayName_;
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, StoredTensor> tensors_;
};

}  // namespace ivl
