// Malformed checkpoints given to `moeq quantize`: each gives a clear error and
// leaves no output file, partial or temporary, behind.
#include "cli/quantize_command.hpp"
#include "cli/synthetic_checkpoint.hpp"
#include "safetensors/error.hpp"
#include "support/error_message.hpp"
#include "support/scratch_folder.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>

using moeq::cli::SyntheticCheckpoint;
using moeq_test::ScratchFolder;
using moeq_test::contains;
using moeq_test::files_in;
using moeq_test::safetensors_bytes;
using moeq_test::write_bytes;

namespace {

const std::string kExpert = "model.layers.0.mlp.experts.0.gate_proj.weight";

// The error quantize_checkpoint throws for `input`, written both to a file in
// an existing folder and to a new folder; neither may hold anything afterwards.
std::string quantize_error(const ScratchFolder& folder, const std::filesystem::path& input,
                           bool double_quant = false) {
  std::filesystem::create_directories(folder / "out");
  std::string message;
  for (const auto& output : {folder / "out" / "model.safetensors", folder / "new_folder"}) {
    moeq::cli::QuantizeOptions options;
    options.inputs = {input.string()};
    options.output = output.string();
    options.double_quant = double_quant;
    options.show_progress = false;
    message =
        moeq_test::message_of<moeq::safetensors::Error>([&] { moeq::cli::quantize_checkpoint(options); });
    CHECK(files_in(folder / "out").empty());
    CHECK_FALSE(std::filesystem::exists(folder / "new_folder"));
  }
  return message;
}

std::filesystem::path good_checkpoint(const ScratchFolder& folder, int64_t shards = 1) {
  SyntheticCheckpoint checkpoint;
  checkpoint.shards = shards;
  checkpoint.layers = 2;
  moeq::cli::write_synthetic_checkpoint(folder / "in", checkpoint);
  return shards == 1 ? folder / "in" / "model.safetensors" : folder / "in";
}

// A one-tensor expert checkpoint whose header entry is `entry` over `data`.
std::filesystem::path crafted(const ScratchFolder& folder, const std::string& entry,
                              const std::string& data) {
  write_bytes(folder / "crafted.safetensors", safetensors_bytes("{\"" + kExpert + "\":" + entry + "}", data));
  return folder / "crafted.safetensors";
}

}  // namespace

TEST_CASE("a truncated checkpoint is refused and nothing is written") {
  ScratchFolder folder;
  const auto input = good_checkpoint(folder);
  std::filesystem::resize_file(input, std::filesystem::file_size(input) - 10);
  CHECK(contains(quantize_error(folder, input), "the file is truncated or the offsets are wrong"));
}

TEST_CASE("a header length past the end of the file is refused and nothing is written") {
  ScratchFolder folder;
  const auto input = good_checkpoint(folder);
  std::fstream(input, std::ios::in | std::ios::out | std::ios::binary)
      .write("\xff\xff\xff\xff\x00\x00\x00\x00", 8);
  CHECK(contains(quantize_error(folder, input), "runs past the end of the file"));
}

TEST_CASE("offsets out of range are refused and nothing is written") {
  ScratchFolder folder;
  const auto input =
      crafted(folder, R"({"dtype":"BF16","shape":[2,32],"data_offsets":[64,192]})", std::string(128, '\0'));
  CHECK(contains(quantize_error(folder, input), "run past the end of the data section"));
}

TEST_CASE("overlapping offsets are refused and nothing is written") {
  ScratchFolder folder;
  write_bytes(
      folder / "overlap.safetensors",
      safetensors_bytes("{\"" + kExpert + R"(":{"dtype":"BF16","shape":[2,32],"data_offsets":[0,128]},)" +
                            R"("model.norm.weight":{"dtype":"BF16","shape":[32],"data_offsets":[64,128]}})",
                        std::string(128, '\0')));
  CHECK(contains(quantize_error(folder, folder / "overlap.safetensors"), "overlaps"));
}

TEST_CASE("an unknown dtype string is refused and nothing is written") {
  ScratchFolder folder;
  const auto input =
      crafted(folder, R"({"dtype":"BF17","shape":[2,32],"data_offsets":[0,128]})", std::string(128, '\0'));
  CHECK(contains(quantize_error(folder, input), "unknown or unsupported dtype \"BF17\""));
}

TEST_CASE("a shape whose product overflows is refused and nothing is written") {
  ScratchFolder folder;
  const auto input =
      crafted(folder, R"({"dtype":"BF16","shape":[4294967296,4294967296,2],"data_offsets":[0,0]})", "");
  CHECK(contains(quantize_error(folder, input), "more bytes than fit in 64 bits"));
}

TEST_CASE("a missing shard is refused and nothing is written") {
  ScratchFolder folder;
  const auto input = good_checkpoint(folder, 2);
  std::filesystem::remove(input / "model-00002-of-00002.safetensors");
  CHECK(contains(quantize_error(folder, input), "shard 'model-00002-of-00002.safetensors' is missing"));
}

TEST_CASE("a failure after the output files were opened removes them all") {
  ScratchFolder folder;
  std::vector<float> values(64, 0.5f);
  values[5] = INFINITY;  // double quantization cannot store an infinite mean of absmax in JSON
  std::string data(256, '\0');
  std::memcpy(data.data(), values.data(), 256);
  const auto input = crafted(folder, R"({"dtype":"F32","shape":[2,32],"data_offsets":[0,256]})", data);
  CHECK(contains(quantize_error(folder, input, true), "not finite"));
}

TEST_CASE("an output that would overwrite its input is refused before anything is written") {
  ScratchFolder folder;
  const auto input = good_checkpoint(folder);
  const std::string before = moeq_test::read_bytes(input);
  moeq::cli::QuantizeOptions options;
  options.inputs = {input.string()};
  options.output = input.string();
  options.show_progress = false;
  CHECK_THROWS_WITH_AS(moeq::cli::quantize_checkpoint(options), doctest::Contains("would overwrite an input"),
                       moeq::safetensors::Error);
  options.output = (folder / "in").string();
  CHECK_THROWS_WITH_AS(moeq::cli::quantize_checkpoint(options), doctest::Contains("would overwrite an input"),
                       moeq::safetensors::Error);
  CHECK(moeq_test::read_bytes(input) == before);
  CHECK(files_in(folder / "in") == std::vector<std::string>{"model.safetensors"});
}
