// The moeq command: subcommands over the library (demo for now).
#include "cli/demo.hpp"

#include <CLI/CLI.hpp>
#include <moeq/moeq.h>

int main(int argc, char** argv) {
  CLI::App app{"moeq: 4-bit Mixture-of-Experts weights and the expert GEMM with LoRA"};
  app.require_subcommand(1);
  app.set_version_flag("--version", moeq_build_info());

  moeq::cli::DemoOptions demo;
  CLI::App* demo_command = app.add_subcommand(
      "demo", "Quantize a GLM-4.7-Flash-shaped expert layer and run the expert GEMM with LoRA");
  demo_command->add_option("--experts", demo.experts, "number of experts E")->check(CLI::Range(1, 1024));
  demo_command->add_option("--hidden", demo.hidden, "hidden size H (K of gate_up)")->check(CLI::PositiveNumber);
  demo_command->add_option("--intermediate", demo.intermediate, "intermediate size I (gate_up has N = 2I)")->check(CLI::PositiveNumber);
  demo_command->add_option("--tokens", demo.tokens, "tokens routed")->check(CLI::PositiveNumber);
  demo_command->add_option("--top-k", demo.top_k, "experts per token")->check(CLI::PositiveNumber);
  demo_command->add_option("--rank", demo.rank, "LoRA rank")->check(CLI::Range(1, 256));
  demo_command->add_option("--format", demo.format, "nf4 or fp4")->check(CLI::IsMember({"nf4", "fp4"}));
  demo_command->add_option("--blocksize", demo.blocksize, "quantization blocksize");
  demo_command->add_flag("--nested", demo.nested, "double quantization of the block statistics");
  demo_command->add_option("--seed", demo.seed, "random seed");

  CLI11_PARSE(app, argc, argv);
  if (demo_command->parsed()) return moeq::cli::run_demo(demo);
  return 0;
}
