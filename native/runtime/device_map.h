// Which device runs each part of the model (issue #10): a model larger than one GPU is
// split by layers, the way the model card's split_model does it.
//
// Devices are logical: device d is the engine's backend d. On CUDA, logical device d runs on
// physical GPU physical[d] (default d), so two logical devices on one GPU exercise every
// cross-device path on a single-GPU machine; on the CPU backend each logical device is its
// own CpuBackend (CI runs the split that way).
//
// The plan ('auto' by free memory, 'card' by SPEC.md §7, or an explicit list) is made in
// TypeScript (lib/deviceMap.ts), which can print it before loading; the engine receives the
// resolved map and checks it (validateDeviceMap).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ivl {

struct DeviceMap {
  int vision = 0;             // InternViT + mlp1 projector
  int embed = 0;              // token embedding table
  int head = 0;               // final norm + LM head (logits are read from here)
  std::vector<int> layers;    // device of each decoder layer; empty: all on device 0
  std::vector<int> physical;  // CUDA GPU of each logical device; empty: identity

  bool trivial() const { return numDevices() == 1 && (physical.empty() || physical[0] == 0); }
  int layer(size_t i) const { return layers.empty() ? 0 : layers[i]; }
  // 1 + the largest logical device used.
  int numDevices() const;
  // The GPU logical device d runs on.
  int physicalDevice(int d) const { return physical.empty() ? d : physical.at(size_t(d)); }
  // "vision 0, embed 0, head 0, layers 0×30 1×30" (logs, errors).
  std::string describe() const;
};

// The map with the vision encoder moved to a logical device of its own (one more backend: its
// own stream and allocator) on the GPU it ran on before (EngineOptions::visionAhead).
DeviceMap withOwnVisionDevice(const DeviceMap& map);
// Whether nothing but the vision encoder runs on its logical device.
bool visionAlone(const DeviceMap& map);

// Throws ivl::Error(InvalidArg) naming the problem: a layer list of the wrong length,
// a negative device, a physical list that does not cover every logical device.
void validateDeviceMap(const DeviceMap& map, int64_t numLayers);

}  // namespace ivl
