// The `moeq` executable end to end on generated checkpoints: quantize, inspect
// and verify exit 0 and say what they did; bad input and bad arguments exit
// non-zero with a message and leave no output.
#include "cli/synthetic_checkpoint.hpp"
#include "support/error_message.hpp"
#include "support/scratch_folder.hpp"

#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>

using moeq_test::ScratchFolder;
using moeq_test::contains;

namespace {

struct Run {
  int exit_code;
  std::string out, err;
};

// Runs `moeq <arguments>` with stdout and stderr captured in `folder`.
Run run_moeq(const ScratchFolder& folder, const std::string& arguments) {
  const std::string command = std::string("'") + MOEQ_COMMAND + "' " + arguments + " > '" +
                              (folder / "stdout.txt").string() + "' 2> '" + (folder / "stderr.txt").string() +
                              "'";
  const int status = std::system(command.c_str());
  return Run{WIFEXITED(status) ? WEXITSTATUS(status) : -1, moeq_test::read_bytes(folder / "stdout.txt"),
             moeq_test::read_bytes(folder / "stderr.txt")};
}

}  // namespace

TEST_CASE("quantize, inspect and verify a single-file checkpoint") {
  ScratchFolder folder;
  moeq::cli::write_synthetic_checkpoint(folder / "in", moeq::cli::SyntheticCheckpoint{});
  const std::string in = (folder / "in/model.safetensors").string(),
                    out = (folder / "out.safetensors").string();

  const Run quantize = run_moeq(folder, "quantize " + in + " -o " + out + " --double-quant");
  CHECK(quantize.exit_code == 0);
  CHECK(contains(quantize.out, "quantized 4 tensors"));
  CHECK(contains(quantize.err, "quantize: 29/29 tensors"));
  CHECK(contains(quantize.err, "GB/s"));

  const Run inspect = run_moeq(folder, "inspect " + out + " --tensors");
  CHECK(inspect.exit_code == 0);
  CHECK(contains(inspect.out, "4-bit tensors (bitsandbytes layout): 4"));
  CHECK(contains(inspect.out, "nf4 blocksize 64 double-quant, bfloat16"));
  CHECK(contains(inspect.out, "model.layers.1.mlp.experts.down_proj"));

  const Run original = run_moeq(folder, "inspect " + in);
  CHECK(original.exit_code == 0);
  CHECK(contains(original.out, "of which 4 are expert weights"));

  const Run verify = run_moeq(folder, "verify " + in + " " + out + " --quiet");
  CHECK(verify.exit_code == 0);
  CHECK(contains(verify.out, "4 of 4 4-bit tensors within the 4-bit error bound"));
  CHECK(contains(verify.out, "verify: OK"));
}

TEST_CASE("quantize and verify a sharded per-expert checkpoint folder into a folder") {
  ScratchFolder folder;
  moeq::cli::SyntheticCheckpoint checkpoint;
  checkpoint.layout = moeq::cli::ExpertLayout::PerExpert;
  checkpoint.shards = 2;
  moeq::cli::write_synthetic_checkpoint(folder / "in", checkpoint);
  const std::string in = (folder / "in").string(), out = (folder / "out").string();
  CHECK(
      run_moeq(folder, "quantize " + in + " -o " + out + " --format fp4 --blocksize 128 --quiet").exit_code ==
      0);
  CHECK(moeq_test::files_in(folder / "out").size() == 3);
  const Run verify = run_moeq(folder, "verify " + in + " " + out + " --quiet");
  CHECK(verify.exit_code == 0);
  CHECK(contains(verify.out, "fp4 b128"));
  CHECK(contains(verify.out, "24 of 24"));
}

TEST_CASE("a malformed input exits 1 with the reason and writes nothing") {
  ScratchFolder folder;
  moeq_test::write_bytes(folder / "bad.safetensors", moeq_test::safetensors_bytes("{}", "", 999));
  const Run run = run_moeq(folder, "quantize " + (folder / "bad.safetensors").string() + " -o " +
                                   (folder / "out.safetensors").string());
  CHECK(run.exit_code == 1);
  CHECK(contains(run.err, "moeq quantize: error: "));
  CHECK(contains(run.err, "header length 999 runs past the end of the file"));
  CHECK_FALSE(std::filesystem::exists(folder / "out.safetensors"));
  CHECK(run_moeq(folder, "inspect " + (folder / "bad.safetensors").string()).exit_code == 1);
  CHECK(run_moeq(folder, "verify " + (folder / "bad.safetensors").string() + " " +
                             (folder / "bad.safetensors").string())
            .exit_code == 1);
}

TEST_CASE("a quantized checkpoint that does not match its original fails verify") {
  ScratchFolder folder;
  moeq::cli::write_synthetic_checkpoint(folder / "a", moeq::cli::SyntheticCheckpoint{});
  moeq::cli::SyntheticCheckpoint other;
  other.seed = 7;
  moeq::cli::write_synthetic_checkpoint(folder / "b", other);
  CHECK(run_moeq(folder, "quantize " + (folder / "b").string() + " -o " + (folder / "b.safetensors").string())
            .exit_code == 0);
  const Run verify =
      run_moeq(folder, "verify " + (folder / "a").string() + " " + (folder / "b.safetensors").string());
  CHECK(verify.exit_code == 1);
  CHECK(contains(verify.out, "verify: FAILED"));
}

TEST_CASE("the demo writes, quantizes and verifies a GLM-4.7-Flash-layout checkpoint before the GEMM demo") {
  ScratchFolder folder;
  const Run run =
      run_moeq(folder, "demo --checkpoint " + (folder / "demo").string() +
                           " --checkpoint-layers 1 --experts 4 --hidden 128 --intermediate 64 --tokens 16");
  CHECK(run.exit_code == 0);
  CHECK(contains(run.out, "2 of 2 4-bit tensors within the 4-bit error bound"));
  CHECK(contains(run.out, "all checks passed"));
  CHECK(moeq_test::files_in(folder / "demo" / "quantized").size() == 3);
}

TEST_CASE("bad arguments are refused before any work") {
  ScratchFolder folder;
  CHECK(run_moeq(folder, "quantize").exit_code != 0);
  CHECK(run_moeq(folder, "quantize x.safetensors").exit_code != 0);  // no -o
  CHECK(run_moeq(folder, "quantize x.safetensors -o y.safetensors --format int8").exit_code != 0);
  CHECK(run_moeq(folder, "quantize x.safetensors -o y.safetensors --blocksize 48").exit_code != 0);
  CHECK(run_moeq(folder, "quantize x.safetensors -o y.safetensors --experts-only --all-linear").exit_code !=
        0);
  CHECK(run_moeq(folder, "verify only-one.safetensors").exit_code != 0);
}

TEST_CASE("--device cuda without a usable GPU says so and writes nothing") {
  ScratchFolder folder;
  moeq::cli::write_synthetic_checkpoint(folder / "in", moeq::cli::SyntheticCheckpoint{});
  const Run run = run_moeq(folder, "quantize " + (folder / "in").string() + " -o " +
                                       (folder / "out.safetensors").string() + " --device cuda");
  if (run.exit_code == 0) return;  // a CUDA build on a GPU machine with the kernels in place
  CHECK(run.exit_code == 1);
  CHECK(contains(run.err, "moeq quantize: error: "));
  CHECK_FALSE(std::filesystem::exists(folder / "out.safetensors"));
}
