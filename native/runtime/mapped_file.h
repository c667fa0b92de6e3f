// A whole file mapped read-only into memory (mmap), unmapped when the last owner
// lets go. Checkpoint tensors point into these mappings, so weights need no copy
// and no read() of gigabytes at load.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ivl {

class MappedFile {
 public:
  // Throws ivl::Error(Checkpoint) naming the path when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  // An anonymous mapping of `bytes` filled with small random bf16 values (|x| < 0.002,
  // from `seed`): the backing store of --dummy-weights checkpoints.
  static std::shared_ptr<MappedFile> synthetic(size_t bytes, uint64_t seed);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* mapping_ = nullptr;  // what munmap gets (null for an empty file)
};

}  // namespace ivl
