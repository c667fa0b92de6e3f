// CUDA device discovery, callable from host C++ without CUDA headers.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace ivl::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int computeMajor = 0;
  int computeMinor = 0;
  int multiprocessors = 0;
  size_t totalMemory = 0;
  size_t freeMemory = 0;
};

struct DeviceReport {
  int driverVersion = 0;   // 0 when no driver is loaded
  int runtimeVersion = 0;
  int cublasVersion = 0;   // proves the cuBLAS/cuBLASLt link; 0 if unavailable
  size_t cublasLtVersion = 0;
  std::vector<DeviceInfo> devices;
  std::string problem;     // why no device is usable, empty when some are
};

// Never throws for "no GPU": that is a normal answer with `problem` set.
DeviceReport queryDevices();

}  // namespace ivl::cuda
