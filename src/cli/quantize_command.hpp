// `moeq quantize IN... -o OUT`: a Hugging Face safetensors checkpoint in, the
// same checkpoint with 4-bit bitsandbytes-layout expert weights out.
#pragma once

#include "cli/tensor_selection.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace moeq::cli {

struct QuantizeOptions {
  std::vector<std::string> inputs;  // files, an index .json, or folders
  std::string output;               // a .safetensors file or a folder
  std::string format = "nf4";
  int32_t blocksize = 64;
  bool double_quant = false;
  Selection selection = Selection::Experts;
  std::string device = "cpu";
  bool show_progress = true;
};

struct QuantizeSummary {
  uint64_t quantized_tensors = 0, copied_tensors = 0;
  uint64_t quantized_input_bytes = 0, quantized_output_bytes = 0;
  uint64_t input_bytes = 0, output_file_bytes = 0;
  double seconds = 0.0;
  std::vector<std::string> written;  // output files, the index last
};

// Throws safetensors::Error; on any failure no output file exists.
QuantizeSummary quantize_checkpoint(const QuantizeOptions& options);

// The command: runs it, prints the summary, returns the exit code.
int run_quantize(const QuantizeOptions& options);

}  // namespace moeq::cli
