// The checkpoint demo: the steps a user takes with a real model, on generated
// weights, each with its size, time and error.
#include "cli/checkpoint_demo.hpp"

#include "cli/byte_units.hpp"
#include "cli/quantize_command.hpp"
#include "cli/synthetic_checkpoint.hpp"
#include "cli/verify_command.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

namespace moeq::cli {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

uint64_t folder_bytes(const std::filesystem::path& folder) {
  uint64_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder))
    if (entry.is_regular_file()) bytes += entry.file_size();
  return bytes;
}

}  // namespace

int run_checkpoint_demo(const std::string& folder_name, int64_t layers, const DemoOptions& options) {
  const std::filesystem::path folder = folder_name;
  SyntheticCheckpoint checkpoint;
  checkpoint.layers = layers;
  checkpoint.experts = options.experts;
  checkpoint.hidden = options.hidden;
  checkpoint.intermediate = options.intermediate;
  checkpoint.vocabulary = 8192;
  checkpoint.shards = 2;
  checkpoint.seed = options.seed;
  std::printf(
      "checkpoint demo: %lld MoE layer%s in GLM-4.7-Flash's layout (mlp.experts.gate_up_proj "
      "[%lld, %lld, %lld], mlp.experts.down_proj [%lld, %lld, %lld], bf16), random weights\n",
      (long long)checkpoint.layers, checkpoint.layers == 1 ? "" : "s", (long long)checkpoint.experts,
      (long long)(2 * checkpoint.intermediate), (long long)checkpoint.hidden, (long long)checkpoint.experts,
      (long long)checkpoint.hidden, (long long)checkpoint.intermediate);

  auto start = std::chrono::steady_clock::now();
  write_synthetic_checkpoint(folder / "original", checkpoint);
  std::printf("  wrote     %s: %s in 2 shards + index, %.1f s\n", (folder / "original").c_str(),
              human_bytes(folder_bytes(folder / "original")).c_str(), seconds_since(start));

  QuantizeOptions quantize;
  quantize.inputs = {(folder / "original").string()};
  quantize.output = (folder / "quantized").string();
  quantize.format = options.format;
  quantize.blocksize = options.blocksize;
  quantize.double_quant = options.nested;
  quantize.show_progress = false;
  const QuantizeSummary summary = quantize_checkpoint(quantize);
  std::printf(
      "  quantized %s: %llu expert tensors %s -> %s (%s blocksize %d%s), the checkpoint %s -> %s, "
      "%.1f s (%.2f GB/s)\n",
      quantize.output.c_str(), (unsigned long long)summary.quantized_tensors,
      human_bytes(summary.quantized_input_bytes).c_str(), human_bytes(summary.quantized_output_bytes).c_str(),
      options.format.c_str(), options.blocksize, options.nested ? " double-quant" : "",
      human_bytes(folder_bytes(folder / "original")).c_str(),
      human_bytes(folder_bytes(folder / "quantized")).c_str(), summary.seconds,
      summary.input_bytes / 1e9 / std::max(summary.seconds, 1e-9));

  start = std::chrono::steady_clock::now();
  VerifyOptions verify;
  verify.original = quantize.inputs;
  verify.quantized = {quantize.output};
  verify.show_progress = false;
  const VerifyResult result = verify_checkpoint(verify);
  double worst_relative = 0.0;
  for (const TensorReport& report : result.tensors)
    worst_relative = std::max(worst_relative, report.errors.relative_error());
  std::printf(
      "  verified  %zu of %zu 4-bit tensors within the 4-bit error bound (largest relative error %.3f), "
      "%zu other tensors identical, %.1f s\n",
      result.within_bound, result.quantized_tensors, worst_relative, result.copied_identical,
      seconds_since(start));
  std::printf("  (`moeq inspect %s` shows what is stored; `moeq verify` the per-tensor errors)\n\n",
              quantize.output.c_str());
  return result.problems.empty() ? 0 : 1;
}

}  // namespace moeq::cli
