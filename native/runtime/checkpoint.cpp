#include "runtime/checkpoint.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "runtime/json.h"

namespace ivl {

namespace {

bool isRegularFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool isDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string joinPath(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string readWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::Checkpoint, "cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Shard names come from a file we do not control: no paths out of the directory.
bool isPlainFileName(const std::string& s) {
  return !s.empty() && s.find('/') == std::string::npos && s.find('\\') == std::string::npos && s != "." &&
         s != "..";
}

}  // namespace

Checkpoint Checkpoint::fromTensors(const std::string& label, std::vector<StoredTensor> tensors) {
  Checkpoint ck;
  ck.dir_ = label;
  for (StoredTensor& t : tensors) {
    auto owned = std::make_shared<const StoredTensor>(std::move(t));
    ck.byName_[owned->name] = owned.get();
    ck.fileByName_[owned->name] = label;
    ck.owned_.push_back(std::move(owned));
  }
  return ck;
}

Checkpoint Checkpoint::open(const std::string& dir) {
  if (!isDirectory(dir)) throw Error(ErrorCode::Checkpoint, "checkpoint directory " + dir + " does not exist");
  Checkpoint ck;
  ck.dir_ = dir;

  const std::string single = joinPath(dir, "model.safetensors");
  const std::string indexPath = joinPath(dir, "model.safetensors.index.json");
  if (isRegularFile(single)) {
    auto f = SafetensorsFile::open(single, "model.safetensors");
    for (const auto& [name, t] : f->tensors()) {
      ck.byName_[name] = &t;
      ck.fileByName_[name] = "model.safetensors";
    }
    ck.files_.push_back(std::move(f));
    return ck;
  }
  if (!isRegularFile(indexPath)) {
    throw Error(ErrorCode::Checkpoint,
                "no weights in " + dir + ": expected model.safetensors or model.safetensors.index.json");
  }

  json::Value index;
  try {
    index = json::parse(readWholeFile(indexPath));
  } catch (const json::JsonError& e) {
    throw Error(ErrorCode::Checkpoint, std::string("model.safetensors.index.json is not valid JSON: ") + e.what());
  }
  const json::Value* map = index.find("weight_map");
  if (!map || !map->isObject()) {
    throw Error(ErrorCode::Checkpoint, "model.safetensors.index.json: missing \"weight_map\" object");
  }
  // Open each shard once, in first-mention order.
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (const auto& [name, file] : map->members()) {
    if (!file.isString() || !isPlainFileName(file.asString())) {
      throw Error(ErrorCode::Checkpoint, "model.safetensors.index.json: weight_map entry for '" + name +
                                             "' must be a file name in the checkpoint directory");
    }
    const std::string& shardName = file.asString();
    auto it = shards.find(shardName);
    if (it == shards.end()) {
      const std::string shardPath = joinPath(dir, shardName);
      if (!isRegularFile(shardPath)) {
        throw Error(ErrorCode::Checkpoint, "model.safetensors.index.json maps tensor '" + name + "' to " + shardName +
                                               ", which does not exist in " + dir);
      }
      it = shards.emplace(shardName, SafetensorsFile::open(shardPath, shardName)).first;
      ck.files_.push_back(it->second);
    }
    const StoredTensor* t = it->second->find(name);
    if (!t) {
      throw Error(ErrorCode::Checkpoint, "model.safetensors.index.json maps tensor '" + name + "' to " + shardName +
                                             ", but that file has no such tensor");
    }
    ck.byName_[name] = t;
    ck.fileByName_[name] = shardName;
  }
  return ck;
}

const StoredTensor* Checkpoint::find(const std::string& name) const {
  auto it = byName_.find(name);
  return it == byName_.end() ? nullptr : it->second;
}

std::string Checkpoint::fileOf(const std::string& name) const {
  auto it = fileByName_.find(name);
  return it == fileByName_.end() ? std::string() : it->second;
}

const StoredTensor& Checkpoint::require(const std::string& name, const Shape& shape) const {
  const StoredTensor* t = find(name);
  if (!t) {
    throw Error(ErrorCode::Checkpoint,
                "missing tensor '" + name + "' (expected shape " + shapeString(shape) + ") in " + dir_);
  }
  if (t->shape != shape) {
    throw Error(ErrorCode::Checkpoint, "tensor '" + name + "' in " + fileOf(name) + " has shape " +
                                           shapeString(t->shape) + " but the config expects " + shapeString(shape));
  }
  if (!t->floatDType) {
    throw Error(ErrorCode::Checkpoint, "tensor '" + name + "' in " + fileOf(name) + " has dtype " + t->dtypeName +
                                           ", expected a float dtype (F32, BF16 or F16)");
  }
  return *t;
}

void Checkpoint::requireAll(const std::vector<ExpectedTensor>& expected) const {
  for (const ExpectedTensor& e : expected) require(e.name, e.shape);
}

}  // namespace ivl
