// --dummy-weights: a checkpoint of random bf16 tensors with exactly the names and
// shapes a config implies, so real-size models load and run (benchmarks at release
// shapes) without checkpoint files. The values are small (|x| < 0.002) so
// activations stay finite through any depth.
#pragma once
#include <cstdint>

#include "runtime/checkpoint.h"
#include "runtime/model_spec.h"

namespace ivl {

Checkpoint dummyCheckpoint(const ModelSpec& spec, uint64_t seed = 1);

}  // namespace ivl
