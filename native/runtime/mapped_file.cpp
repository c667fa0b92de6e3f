#include "runtime/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/error.h"

namespace ivl {

namespace {
// Closes the descriptor on every path out of open(); the mapping outlives it.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(ErrorCode::Checkpoint, "cannot open " + path + ": " + std::strerror(errno));
  }
  FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw Error(ErrorCode::Checkpoint, "cannot stat " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::Checkpoint, path + " is not a regular file");

  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ == 0) return f;  // nothing to map; the header check reports it
  void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) {
    throw Error(ErrorCode::Checkpoint, "cannot mmap " + path + ": " + std::strerror(errno));
  }
  f->mapping_ = p;
  f->data_ = static_cast<const uint8_t*>(p);
  return f;
}

std::shared_ptr<MappedFile> MappedFile::synthetic(size_t bytes, uint64_t seed) {
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = "(dummy weights)";
  f->size_ = bytes;
  if (bytes == 0) return f;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw Error(ErrorCode::OutOfMemory, "cannot map " + std::to_string(bytes) + " bytes for dummy weights");
  auto* h = static_cast<uint16_t*>(p);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < bytes / 2; ++i) {
    x ^= x << 13;  // xorshift64: speed matters here, quality does not
    x ^= x >> 7;
    x ^= x << 17;
    float v = (static_cast<float>(x >> 40) / float(1 << 24) - 0.5f) * 0.004f;
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    h[i] = static_cast<uint16_t>(bits >> 16);
  }
  ::mprotect(p, bytes, PROT_READ);
  f->mapping_ = p;
  f->data_ = static_cast<const uint8_t*>(p);
  return f;
}

MappedFile::~MappedFile() {
  if (mapping_) ::munmap(mapping_, size_);
}

}  // namespace ivl
