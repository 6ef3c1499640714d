// moeq_make_checkpoint: writes a generated MoE checkpoint (GLM-4.7-Flash-like
// keys, random weights) for the `moeq quantize` benchmark.
#include "cli/synthetic_checkpoint.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>

int main(int argc, char** argv) {
  CLI::App app{"Write a generated Mixture-of-Experts safetensors checkpoint"};
  std::string folder, layout = "fused", dtype = "bf16";
  moeq::cli::SyntheticCheckpoint checkpoint;
  app.add_option("folder", folder, "where to write it")->required();
  app.add_option("--layout", layout,
                 "fused (experts.gate_up_proj) or per-expert (experts.<e>.gate_proj.weight)")
      ->check(CLI::IsMember({"fused", "per-expert"}));
  app.add_option("--layers", checkpoint.layers, "MoE layers")->check(CLI::PositiveNumber);
  app.add_option("--experts", checkpoint.experts, "experts per layer")->check(CLI::PositiveNumber);
  app.add_option("--hidden", checkpoint.hidden, "hidden size H")->check(CLI::PositiveNumber);
  app.add_option("--intermediate", checkpoint.intermediate, "expert intermediate size I")
      ->check(CLI::PositiveNumber);
  app.add_option("--vocabulary", checkpoint.vocabulary, "rows of the embedding and the head")
      ->check(CLI::PositiveNumber);
  app.add_option("--shards", checkpoint.shards, "files (> 1 adds model.safetensors.index.json)")
      ->check(CLI::PositiveNumber);
  app.add_option("--dtype", dtype, "bf16, f16 or f32")->check(CLI::IsMember({"bf16", "f16", "f32"}));
  app.add_option("--seed", checkpoint.seed, "random seed");
  CLI11_PARSE(app, argc, argv);
  checkpoint.layout = layout == "fused" ? moeq::cli::ExpertLayout::Fused : moeq::cli::ExpertLayout::PerExpert;
  checkpoint.dtype = dtype == "bf16"   ? moeq::safetensors::Dtype::BF16
                     : dtype == "f16" ? moeq::safetensors::Dtype::F16
                                      : moeq::safetensors::Dtype::F32;
  try {
    const auto start = std::chrono::steady_clock::now();
    const auto files = moeq::cli::write_synthetic_checkpoint(folder, checkpoint);
    uint64_t bytes = 0;
    for (const auto& file : files) bytes += std::filesystem::file_size(file);
    std::printf("wrote %zu file(s), %.3f GB, in %.1f s\n", files.size(), bytes / 1e9,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "moeq_make_checkpoint: error: %s\n", error.what());
    return 1;
  }
  return 0;
}
