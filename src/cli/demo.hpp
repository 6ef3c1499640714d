// `moeq demo`: the embedded default a new user runs first.
#pragma once

#include <cstdint>
#include <string>

namespace moeq::cli {

// GLM-4.7-Flash's expert layer (64 experts, top-4, H 2048, I 1536), gate_up projection.
struct DemoOptions {
  int64_t experts = 64;
  int64_t hidden = 2048;
  int64_t intermediate = 1536;
  int64_t tokens = 512;
  int64_t top_k = 4;
  int64_t rank = 16;
  std::string format = "nf4";
  int32_t blocksize = 64;
  bool nested = true;
  uint64_t seed = 2026;
};

// Returns the process exit code (0 when every check passed).
int run_demo(const DemoOptions& options);

}  // namespace moeq::cli
