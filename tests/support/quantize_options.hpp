// For the suites that call quantize_checkpoint: the options of a plain run.
#pragma once

#include "cli/quantize_command.hpp"

#include <filesystem>

namespace moeq_test {

// One input, one output, the defaults otherwise, and no progress line.
inline moeq::cli::QuantizeOptions quantize_options(const std::filesystem::path& input,
                                                   const std::filesystem::path& output) {
  moeq::cli::QuantizeOptions options;
  options.inputs = {input.string()};
  options.output = output.string();
  options.show_progress = false;
  return options;
}

}  // namespace moeq_test
