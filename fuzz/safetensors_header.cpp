// Fuzz target: one safetensors file through SafetensorsFile::open
// (native/runtime/safetensors.cpp + mapped_file.cpp + json.cpp).
//
// Input: [u32 little-endian: zero bytes of data to append][file bytes: u64 header
// length, JSON header, maybe data]. The data section is appended as zeros (a sparse
// ftruncate), so seeds stay a few KB — the header is what is fuzzed — while real
// data sizes (hundreds of KB) are still described. The file lives in a memfd and is
// opened through /proc/self/fd like any path.
//
// Contract checked: open() either succeeds or throws ivl::Error with code
// Checkpoint. On success every tensor lies inside the mapping, its byte count is
// numel × element size, numel() does not overflow, and its first and last bytes
// can be read.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "runtime/error.h"
#include "runtime/safetensors.h"

namespace {

int gFd = -1;
std::string gPath;

size_t elementSize(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  return 1;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gFd = memfd_create("ivl-fuzz-safetensors", 0);
  if (gFd < 0) abort();
  gPath = "/proc/self/fd/" + std::to_string(gFd);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (gFd < 0) LLVMFuzzerInitialize(nullptr, nullptr);
  if (size < 4) return 0;
  uint32_t pad = uint32_t(data[0]) | uint32_t(data[1]) << 8 | uint32_t(data[2]) << 16 | uint32_t(data[3]) << 24;
  pad &= (1u << 24) - 1;  // at most 16 MiB of (sparse) data
  const uint8_t* file = data + 4;
  const size_t fileSize = size - 4;
  if (ftruncate(gFd, 0) != 0) abort();
  if (fileSize && pwrite(gFd, file, fileSize, 0) != ssize_t(fileSize)) abort();
  if (ftruncate(gFd, off_t(fileSize + pad)) != 0) abort();

  try {
    auto st = ivl::SafetensorsFile::open(gPath, "fuzz.safetensors");
    const size_t total = fileSize + pad;
    for (const auto& [name, t] : st->tensors()) {
      if (name != t.name || st->find(name) != &t) abort();
      const uint8_t* base = t.file->data();
      if (t.bytes > 0 && (t.data < base || t.data + t.bytes > base + total)) abort();  // outside the mapping
      int64_t numel = t.numel();  // must not overflow (UBSan reports signed overflow)
      if (numel < 0) abort();
      if (uint64_t(numel) > std::numeric_limits<uint64_t>::max() / 8 ||
          uint64_t(numel) * elementSize(t.dtypeName) != t.bytes) {
        abort();
      }
      if (t.bytes > 0) {
        volatile uint8_t first = t.data[0], last = t.data[t.bytes - 1];
        (void)first;
        (void)last;
      }
    }
  } catch (const ivl::Error& e) {
    if (e.code() != ivl::ErrorCode::Checkpoint) abort();
    if (std::strstr(e.what(), "fuzz.safetensors") == nullptr) abort();  // errors name the file
  }
  return 0;
}
