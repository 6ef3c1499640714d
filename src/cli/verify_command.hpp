// `moeq verify ORIGINAL QUANTIZED`: per-tensor error of dequantize(quantized)
// against the original, and a check that everything else was copied unchanged.
#pragma once

#include "cli/error_stats.hpp"

#include <string>
#include <vector>

namespace moeq::cli {

struct VerifyOptions {
  std::vector<std::string> original;   // a checkpoint as `quantize` takes it
  std::vector<std::string> quantized;
  bool show_progress = true;
};

struct TensorReport {
  std::string name;
  std::string format;  // "nf4 b64 dq"
  ErrorStats errors;
};

struct VerifyResult {
  std::vector<TensorReport> tensors;  // every 4-bit tensor compared
  size_t quantized_tensors = 0, within_bound = 0;
  size_t copied_identical = 0;
  std::vector<std::string> problems;  // one line each; empty when all is well
};

// Throws safetensors::Error for malformed input.
VerifyResult verify_checkpoint(const VerifyOptions& options);

// The command: prints the per-tensor table; 0 when every 4-bit tensor is within
// its bound and every other tensor is identical to the original, 1 otherwise.
int run_verify(const VerifyOptions& options);

}  // namespace moeq::cli
