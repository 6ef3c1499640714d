// `moeq demo --checkpoint DIR`: the whole checkpoint workflow on a generated
// GLM-4.7-Flash-layout checkpoint: write it, quantize it, verify it.
#pragma once

#include "cli/demo.hpp"

#include <cstdint>
#include <string>

namespace moeq::cli {

// Writes `layers` MoE layers shaped and quantized as `demo` says (experts,
// hidden, intermediate, format, blocksize, nested, seed) into folder/original,
// quantizes them into folder/quantized and verifies them, printing each step.
// Returns the exit code (0 when verify passed).
int run_checkpoint_demo(const std::string& folder, int64_t layers, const DemoOptions& demo);

}  // namespace moeq::cli
