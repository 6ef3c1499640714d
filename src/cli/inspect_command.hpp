// `moeq inspect FILE...`: what a checkpoint stores, in which format, and its
// size before and after quantization.
#pragma once

#include <string>
#include <vector>

namespace moeq::cli {

struct InspectOptions {
  std::vector<std::string> inputs;
  bool list_tensors = false;  // one line per tensor after the summary
};

// Prints the report; throws safetensors::Error for malformed input.
int run_inspect(const InspectOptions& options);

}  // namespace moeq::cli
