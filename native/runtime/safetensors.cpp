#include "runtime/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "runtime/json.h"

namespace ivl {

namespace {

// Element sizes of every dtype the safetensors format defines.
struct DTypeInfo {
  const char* name;
  size_t bytes;
};
constexpr DTypeInfo kDTypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
    {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8},
};

const DTypeInfo* lookupDType(const std::string& s) {
  for (const DTypeInfo& d : kDTypes) {
    if (s == d.name) return &d;
  }
  return nullptr;
}

std::optional<DType> floatDTypeOf(const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "BF16") return DType::BF16;
  if (s == "F16") return DType::F16;
  return std::nullopt;
}

}  // namespace

const StoredTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path, const std::string& displayName) {
  auto fail = [&](const std::string& what) -> Error {
    return Error(ErrorCode::Checkpoint, displayName + ": " + what);
  };
  auto failTensor = [&](const std::string& name, const std::string& what) -> Error {
    return Error(ErrorCode::Checkpoint, displayName + ": tensor '" + name + "': " + what);
  };

  auto st = std::make_shared<SafetensorsFile>();
  st->displayName_ = displayName;
  st->file_ = MappedFile::open(path);
  const MappedFile& f = *st->file_;

  // [u64 N][N bytes JSON][data]
  if (f.size() < 8) {
    throw fail("file is " + std::to_string(f.size()) + " bytes, too short for the 8-byte header length");
  }
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i) headerLen = (headerLen << 8) | f.data()[i];  // little-endian
  if (headerLen > f.size() - 8) {
    throw fail("header length " + std::to_string(headerLen) + " exceeds the file size (" + std::to_string(f.size()) +
               " bytes): truncated or not a safetensors file");
  }
  if (headerLen < 2) throw fail("header length " + std::to_string(headerLen) + " is too small for a JSON object");
  const size_t dataStart = 8 + size_t(headerLen);
  const size_t dataSize = f.size() - dataStart;

  json::Value header;
  try {
    header = json::parse(std::string_view(reinterpret_cast<const char*>(f.data()) + 8, size_t(headerLen)));
  } catch (const json::JsonError& e) {
    throw fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.isObject()) throw fail(std::string("header is a JSON ") + header.typeName() + ", expected an object");

  struct Range {
    size_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;

  for (const auto& [name, entry] : header.members()) {
    if (name == "__metadata__") continue;
    if (!entry.isObject()) throw failTensor(name, std::string("entry is a JSON ") + entry.typeName() + ", expected an object");
    const json::Value* dtype = entry.find("dtype");
    const json::Value* shape = entry.find("shape");
    const json::Value* offsets = entry.find("data_offsets");
    if (!dtype || !dtype->isString()) throw failTensor(name, "missing or non-string \"dtype\"");
    if (!shape || !shape->isArray()) throw failTensor(name, "missing or non-array \"shape\"");
    if (!offsets || !offsets->isArray() || offsets->asArray().size() != 2) {
      throw failTensor(name, "\"data_offsets\" must be an array of two integers");
    }
    const DTypeInfo* info = lookupDType(dtype->asString());
    if (!info) throw failTensor(name, "unknown dtype \"" + dtype->asString() + "\"");

    StoredTensor t;
    t.name = name;
    t.dtypeName = info->name;
    t.floatDType = floatDTypeOf(t.dtypeName);
    // numel with overflow checks: a crafted shape must not wrap around. The product of
    // the non-zero dims must fit int64, so shapeNumel() (int64, any order) never
    // overflows even when a zero dim makes the tensor empty: [2^62, 2, 0] is refused.
    uint64_t nonZero = 1;
    bool empty = false;
    for (const json::Value& d : shape->asArray()) {
      if (!d.isInteger() || d.asInt() < 0) throw failTensor(name, "shape entries must be non-negative integers");
      uint64_t dim = uint64_t(d.asInt());
      if (dim == 0) {
        empty = true;
      } else {
        if (nonZero > uint64_t(std::numeric_limits<int64_t>::max()) / dim) throw failTensor(name, "shape is too large");
        nonZero *= dim;
      }
      t.shape.push_back(d.asInt());
    }
    const uint64_t numel = empty ? 0 : nonZero;
    const json::Value& b = offsets->asArray()[0];
    const json::Value& e = offsets->asArray()[1];
    if (!b.isInteger() || !e.isInteger() || b.asInt() < 0 || e.asInt() < 0) {
      throw failTensor(name, "\"data_offsets\" must be non-negative integers");
    }
    uint64_t begin = uint64_t(b.asInt()), end = uint64_t(e.asInt());
    if (begin > end) {
      throw failTensor(name, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] are reversed");
    }
    if (end > dataSize) {
      throw failTensor(name, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                 "] are out of range: the data section is " + std::to_string(dataSize) + " bytes");
    }
    if (numel > std::numeric_limits<uint64_t>::max() / info->bytes || end - begin != numel * info->bytes) {
      throw failTensor(name, "data_offsets span " + std::to_string(end - begin) + " bytes but " + t.dtypeName + " " +
                                 shapeString(t.shape) + " needs " + std::to_string(numel * info->bytes));
    }
    t.data = f.data() + dataStart + begin;
    t.bytes = size_t(end - begin);
    t.file = st->file_;
    ranges.push_back({size_t(begin), size_t(end), &t.name});
    auto inserted = st->tensors_.emplace(name, std::move(t));
    ranges.back().name = &inserted.first->first;
  }

  // Overlap check: sorted by begin, each range must start at or after the previous end.
  // Empty tensors occupy no bytes and cannot overlap anything.
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const Range* prev = nullptr;
  for (const Range& r : ranges) {
    if (r.begin == r.end) continue;
    if (prev && r.begin < prev->end) {
      throw fail("tensors '" + *prev->name + "' [" + std::to_string(prev->begin) + ", " + std::to_string(prev->end) +
                 ") and '" + *r.name + "' [" + std::to_string(r.begin) + ", " + std::to_string(r.end) +
                 ") overlap");
    }
    prev = &r;
  }
  return st;
}

}  // namespace ivl
