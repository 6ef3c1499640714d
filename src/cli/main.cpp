// The moeq command: subcommands over the library.
#include "cli/checkpoint_demo.hpp"
#include "cli/demo.hpp"
#include "cli/inspect_command.hpp"
#include "cli/quantize_command.hpp"
#include "cli/verify_command.hpp"

#include <CLI/CLI.hpp>
#include <moeq/moeq.h>

#include <cstdio>
#include <exception>

namespace {

// Every failure becomes one line on stderr and exit code 1, never a crash.
template <class Command>
int run_reporting_errors(const char* name, Command&& command) {
  try {
    return command();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "moeq %s: error: %s\n", name, error.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"moeq: 4-bit Mixture-of-Experts weights and the expert GEMM with LoRA"};
  app.require_subcommand(1);
  app.set_version_flag("--version", moeq_build_info());

  moeq::cli::QuantizeOptions quantize;
  CLI::App* quantize_command = app.add_subcommand(
      "quantize", "Quantize the expert weights of a safetensors checkpoint to 4 bits (bitsandbytes layout)");
  quantize_command
      ->add_option("inputs", quantize.inputs, "safetensors files, a *.index.json, or a checkpoint folder")
      ->required();
  quantize_command
      ->add_option("-o,--output", quantize.output, "a .safetensors file, or a folder for sharded output")
      ->required();
  quantize_command->add_option("--format", quantize.format, "nf4 or fp4")
      ->check(CLI::IsMember({"nf4", "fp4"}));
  quantize_command
      ->add_option("--blocksize", quantize.blocksize, "elements per absmax block: 32, 64, ..., 4096")
      ->check(CLI::IsMember({32, 64, 128, 256, 512, 1024, 2048, 4096}));
  quantize_command->add_flag("--double-quant", quantize.double_quant,
                             "quantize the block absmax to 8 bits too (bitsandbytes compress_statistics)");
  CLI::Option* experts_only = quantize_command->add_flag(
      "--experts-only", "quantize only MoE expert weights (default)");
  CLI::Option* all_linear = quantize_command->add_flag(
      "--all-linear", "also quantize every other linear weight (not embeddings, norms, routers, lm_head)");
  experts_only->excludes(all_linear);
  quantize_command->add_option("--device", quantize.device, "cpu, or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  quantize_command->add_flag("--quiet{false}", quantize.show_progress, "no progress line");

  moeq::cli::InspectOptions inspect;
  CLI::App* inspect_command = app.add_subcommand(
      "inspect", "Show what a checkpoint stores: 4-bit and other tensors, formats, sizes before and after");
  inspect_command
      ->add_option("inputs", inspect.inputs, "safetensors files, a *.index.json, or a checkpoint folder")
      ->required();
  inspect_command->add_flag("--tensors", inspect.list_tensors, "list every tensor after the summary");

  moeq::cli::VerifyOptions verify;
  std::string verify_original, verify_quantized;
  CLI::App* verify_command = app.add_subcommand(
      "verify", "Compare a 4-bit checkpoint with its original: per-tensor errors and the 4-bit error bound");
  verify_command->add_option("original", verify_original, "the checkpoint that was quantized")->required();
  verify_command->add_option("quantized", verify_quantized, "what `moeq quantize` wrote")->required();
  verify_command->add_flag("--quiet{false}", verify.show_progress, "no progress line");

  moeq::cli::DemoOptions demo;
  CLI::App* demo_command = app.add_subcommand(
      "demo", "Quantize a GLM-4.7-Flash-shaped expert layer and run the expert GEMM with LoRA");
  demo_command->add_option("--experts", demo.experts, "number of experts E")->check(CLI::Range(1, 1024));
  demo_command->add_option("--hidden", demo.hidden, "hidden size H (K of gate_up)")
      ->check(CLI::PositiveNumber);
  demo_command->add_option("--intermediate", demo.intermediate, "intermediate size I (gate_up has N = 2I)")
      ->check(CLI::PositiveNumber);
  demo_command->add_option("--tokens", demo.tokens, "tokens routed")->check(CLI::PositiveNumber);
  demo_command->add_option("--top-k", demo.top_k, "experts per token")->check(CLI::PositiveNumber);
  demo_command->add_option("--rank", demo.rank, "LoRA rank")->check(CLI::Range(1, 256));
  demo_command->add_option("--format", demo.format, "nf4 or fp4")->check(CLI::IsMember({"nf4", "fp4"}));
  demo_command->add_option("--blocksize", demo.blocksize, "quantization blocksize");
  demo_command->add_flag("--nested", demo.nested, "double quantization of the block statistics");
  demo_command->add_option("--seed", demo.seed, "random seed");
  std::string checkpoint_folder;
  int64_t checkpoint_layers = 2;
  demo_command->add_option(
      "--checkpoint", checkpoint_folder,
      "first write a GLM-4.7-Flash-layout checkpoint into this folder, quantize and verify it");
  demo_command->add_option("--checkpoint-layers", checkpoint_layers, "MoE layers of that checkpoint")
      ->check(CLI::Range(1, 100));

  CLI11_PARSE(app, argc, argv);
  if (quantize_command->parsed()) {
    quantize.selection =
        all_linear->count() > 0 ? moeq::cli::Selection::AllLinear : moeq::cli::Selection::Experts;
    return run_reporting_errors("quantize", [&] { return moeq::cli::run_quantize(quantize); });
  }
  if (inspect_command->parsed())
    return run_reporting_errors("inspect", [&] { return moeq::cli::run_inspect(inspect); });
  if (verify_command->parsed()) {
    verify.original = {verify_original};
    verify.quantized = {verify_quantized};
    return run_reporting_errors("verify", [&] { return moeq::cli::run_verify(verify); });
  }
  if (demo_command->parsed()) {
    if (!checkpoint_folder.empty()) {
      const int exit_code = run_reporting_errors(
          "demo", [&] { return moeq::cli::run_checkpoint_demo(checkpoint_folder, checkpoint_layers, demo); });
      if (exit_code != 0) return exit_code;
    }
    return moeq::cli::run_demo(demo);
  }
  return 0;
}
