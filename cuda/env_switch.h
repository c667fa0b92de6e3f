// The CUDA backend's process-wide switches from the environment (docs/ENGINE.md lists them):
// on by default unless the variable starts with '0', or off by default unless it starts with
// '1'. Callers keep the answer in a function-local static, so each is read once per process.
#pragma once
#include <cstdlib>

namespace ivl::cuda {

inline bool envSwitch(const char* name, bool byDefault) {
  const char* e = std::getenv(name);
  return byDefault ? !(e != nullptr && e[0] == '0') : (e != nullptr && e[0] == '1');
}

}  // namespace ivl::cuda
