#include "runtime/device_map.h"

#include <algorithm>

#include "runtime/error.h"

namespace ivl {

int DeviceMap::numDevices() const {
  int n = std::max({vision, embed, head});
  for (int d : layers) n = std::max(n, d);
  return n + 1;
}

std::string DeviceMap::describe() const {
  std::string s = "vision " + std::to_string(vision) + ", embed " + std::to_string(embed) + ", head " +
                  std::to_string(head) + ", layers";
  if (layers.empty()) return s + " all on 0";
  for (size_t i = 0; i < layers.size();) {  // run-length: device×count
    size_t j = i;
    while (j < layers.size() && layers[j] == layers[i]) ++j;
    s += " " + std::to_string(layers[i]) + "×" + std::to_string(j - i);
    i = j;
  }
  return s;
}

DeviceMap withOwnVisionDevice(const DeviceMap& map) {
  if (visionAlone(map)) return map;
  DeviceMap out = map;
  const int n = map.numDevices();
  out.physical.resize(size_t(n));
  for (int d = 0; d < n; ++d) out.physical[size_t(d)] = map.physicalDevice(d);
  out.physical.push_back(map.physicalDevice(map.vision));
  out.vision = n;
  return out;
}

bool visionAlone(const DeviceMap& map) {
  if (map.vision == map.embed || map.vision == map.head) return false;
  if (map.layers.empty()) return map.vision != 0;
  return std::find(map.layers.begin(), map.layers.end(), map.vision) == map.layers.end();
}

void validateDeviceMap(const DeviceMap& map, int64_t numLayers) {
  auto bad = [](const std::string& m) { return Error(ErrorCode::InvalidArg, "deviceMap: " + m); };
  if (!map.layers.empty() && int64_t(map.layers.size()) != numLayers) {
    throw bad("layers lists " + std::to_string(map.layers.size()) + " devices but the model has " +
              std::to_string(numLayers) + " decoder layers (one device per layer)");
  }
  for (size_t i = 0; i < map.layers.size(); ++i) {
    if (map.layers[i] < 0) throw bad("layer " + std::to_string(i) + " has device " + std::to_string(map.layers[i]));
  }
  if (map.vision < 0 || map.embed < 0 || map.head < 0) throw bad("vision, embed and head devices must be >= 0");
  const int n = map.numDevices();
  if (!map.physical.empty()) {
    if (int(map.physical.size()) < n) {
      throw bad("physical lists " + std::to_string(map.physical.size()) + " GPUs for " + std::to_string(n) +
                " logical devices");
    }
    for (int p : map.physical) {
      if (p < 0) throw bad("physical GPU indices must be >= 0");
    }
  }
}

}  // namespace ivl
