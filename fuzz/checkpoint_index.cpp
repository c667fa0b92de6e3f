// Fuzz target: model.safetensors.index.json through Checkpoint::open
// (native/runtime/checkpoint.cpp), with real shard files beside it.
//
// At start-up a temporary tree is made:
//   <tmp>/evil.safetensors           a valid shard OUTSIDE the checkpoint directory
//   <tmp>/ckpt/a.safetensors         tensors "x" [2, 2] BF16 and "y" [3] F32
//   <tmp>/ckpt/b.safetensors         tensor "z" [4] I64
//   <tmp>/ckpt/d.safetensors/        a directory named like a shard
//   <tmp>/ckpt/link.safetensors  ->  ../evil.safetensors (a symlink out: allowed, as
//                                    Hugging Face cache snapshots link into ../../blobs)
// Each input is written as <tmp>/ckpt/model.safetensors.index.json and the directory
// opened. Contract: success or ivl::Error(Checkpoint), nothing else; on success
// every tensor was found in a shard opened as <dir>/<plain file name> (no '/', '..':
// evil.safetensors is reachable only through the link, never by a path),
// and lies inside its shard's mapping; requireAll() with a fixed list answers with
// success or ivl::Error(Checkpoint) too.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "runtime/checkpoint.h"
#include "runtime/error.h"

namespace {

std::string gRoot, gDir, gIndex;

void writeFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) abort();
}

// A safetensors file from a JSON header and a data section of `dataBytes` zeros.
std::string safetensors(const std::string& header, size_t dataBytes) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header + std::string(dataBytes, '\0');
}

void cleanup() {
  if (gRoot.empty()) return;
  std::string cmd = "rm -rf '" + gRoot + "'";
  (void)!std::system(cmd.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/ivl-fuzz-ckpt-XXXXXX";
  if (!mkdtemp(tmpl.data())) abort();
  gRoot = tmpl;
  gDir = gRoot + "/ckpt";
  gIndex = gDir + "/model.safetensors.index.json";
  if (mkdir(gDir.c_str(), 0755) != 0) abort();
  writeFile(gRoot + "/evil.safetensors",
            safetensors(R"({"x":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}})", 8));
  writeFile(gDir + "/a.safetensors",
            safetensors(R"({"__metadata__":{"format":"pt"},"x":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},)"
                        R"("y":{"dtype":"F32","shape":[3],"data_offsets":[8,20]}})",
                        20));
  writeFile(gDir + "/b.safetensors", safetensors(R"({"z":{"dtype":"I64","shape":[4],"data_offsets":[0,32]}})", 32));
  if (mkdir((gDir + "/d.safetensors").c_str(), 0755) != 0) abort();
  if (symlink("../evil.safetensors", (gDir + "/link.safetensors").c_str()) != 0) abort();
  std::atexit(cleanup);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (gRoot.empty()) LLVMFuzzerInitialize(nullptr, nullptr);
  writeFile(gIndex, std::string(reinterpret_cast<const char*>(data), size));
  try {
    ivl::Checkpoint ck = ivl::Checkpoint::open(gDir);
    for (const char* name : {"x", "y", "z", "w", ""}) {
      const ivl::StoredTensor* t = ck.find(name);
      if (!t) continue;
      const std::string file = ck.fileOf(name);
      if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") abort();
      const std::string& path = t->file->path();
      if (path != gDir + "/" + file) abort();  // opened from inside the directory, by a plain name
      if (t->bytes > 0 && (t->data < t->file->data() || t->data + t->bytes > t->file->data() + t->file->size())) abort();
    }
    try {
      ck.requireAll({{"x", {2, 2}}, {"y", {3}}});
    } catch (const ivl::Error& e) {
      if (e.code() != ivl::ErrorCode::Checkpoint) abort();
    }
  } catch (const ivl::Error& e) {
    if (e.code() != ivl::ErrorCode::Checkpoint) abort();
  }
  return 0;
}
