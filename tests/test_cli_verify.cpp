// `moeq verify` and the reading of 4-bit tensors back from a checkpoint: a
// faithful quantization passes, any tampering or mismatch is named, and a
// malformed 4-bit entry is refused with the reason.
#include "cli/quantize_command.hpp"
#include "cli/quantized_tensors.hpp"
#include "cli/synthetic_checkpoint.hpp"
#include "cli/verify_command.hpp"
#include "safetensors/checkpoint.hpp"
#include "safetensors/error.hpp"
#include "safetensors/file.hpp"
#include "support/scratch_folder.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>

using moeq::cli::SyntheticCheckpoint;
using moeq::cli::VerifyResult;
using moeq::safetensors::Dtype;
using moeq_test::ScratchFolder;

namespace {

std::filesystem::path quantized_checkpoint(const ScratchFolder& folder, const SyntheticCheckpoint& checkpoint,
                                           bool double_quant) {
  const auto inputs = moeq::cli::write_synthetic_checkpoint(folder / "in", checkpoint);
  moeq::cli::QuantizeOptions options;
  options.inputs = {inputs[0].string()};
  options.output = (folder / "out.safetensors").string();
  options.double_quant = double_quant;
  options.show_progress = false;
  moeq::cli::quantize_checkpoint(options);
  return folder / "out.safetensors";
}

VerifyResult verify(const std::filesystem::path& original, const std::filesystem::path& quantized) {
  moeq::cli::VerifyOptions options;
  options.original = {original.string()};
  options.quantized = {quantized.string()};
  options.show_progress = false;
  return moeq::cli::verify_checkpoint(options);
}

// Overwrites `bytes` at the start of tensor `name`'s data in `path`.
void overwrite_tensor(const std::filesystem::path& path, const std::string& name, const std::string& bytes) {
  uint64_t position = 0;
  {
    const moeq::safetensors::File file(path);
    const uint64_t data_start =
        file.size_bytes() - file.tensors().back().end;  // tensors tile the data section
    position = data_start + file.find(name)->begin;
  }
  std::fstream stream(path, std::ios::in | std::ios::out | std::ios::binary);
  stream.seekp(static_cast<std::streamoff>(position));
  stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

bool mentions(const VerifyResult& result, const std::string& part) {
  for (const std::string& problem : result.problems)
    if (problem.find(part) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("a faithful quantization of either layout, plain or nested, verifies clean") {
  for (const auto layout : {moeq::cli::ExpertLayout::Fused, moeq::cli::ExpertLayout::PerExpert})
    for (const bool double_quant : {false, true}) {
      ScratchFolder folder;
      SyntheticCheckpoint checkpoint;
      checkpoint.layout = layout;
      const auto output = quantized_checkpoint(folder, checkpoint, double_quant);
      const VerifyResult result = verify(folder / "in", output);
      CHECK(result.problems.empty());
      CHECK(result.quantized_tensors == (layout == moeq::cli::ExpertLayout::Fused ? 4u : 24u));
      CHECK(result.within_bound == result.quantized_tensors);
      CHECK(result.copied_identical == 2 * 11 + 3u);
    }
}

TEST_CASE("changed 4-bit codes are caught by the error bound") {
  ScratchFolder folder;
  const auto output = quantized_checkpoint(folder, SyntheticCheckpoint{}, false);
  overwrite_tensor(output, "model.layers.1.mlp.experts.down_proj",
                   std::string(32, '\0'));  // 64 codes of -1.0
  const VerifyResult result = verify(folder / "in", output);
  CHECK(result.within_bound == result.quantized_tensors - 1);
  CHECK(mentions(result, "'model.layers.1.mlp.experts.down_proj': errors above the 4-bit bound"));
}

TEST_CASE("a copied tensor that changed is named") {
  ScratchFolder folder;
  const auto output = quantized_checkpoint(folder, SyntheticCheckpoint{}, false);
  overwrite_tensor(output, "model.norm.weight", std::string(2, '\0'));
  CHECK(mentions(verify(folder / "in", output), "'model.norm.weight': differs from the original"));
}

TEST_CASE("a different original fails the bound, and tensors missing on either side are named") {
  ScratchFolder folder;
  const auto output = quantized_checkpoint(folder, SyntheticCheckpoint{}, true);
  SyntheticCheckpoint other;
  other.seed = 99;
  other.layers = 3;
  moeq::cli::write_synthetic_checkpoint(folder / "other", other);
  const VerifyResult result = verify(folder / "other", output);
  CHECK(result.within_bound == 0);
  CHECK(mentions(result, "'model.layers.2.mlp.experts.gate_up_proj': missing from the quantized checkpoint"));
}

TEST_CASE("malformed 4-bit entries are refused with the reason") {
  struct Case {
    const char* what;
    std::vector<moeq::safetensors::TensorSpec> specs;
    std::string state;
    const char* message;
  };
  const std::string good_state = R"({"quant_type":"nf4","blocksize":64,"dtype":"bfloat16","shape":[2,64]})";
  const std::vector<moeq::safetensors::TensorSpec> good_specs{
      {"w", Dtype::U8, {64, 1}}, {"w.absmax", Dtype::F32, {2}}, {"w.quant_map", Dtype::F32, {16}}};
  const std::vector<Case> cases{
      {"JSON", good_specs, "{\"quant_type\":", "not valid JSON"},
      {"quant_type", good_specs, R"({"quant_type":"int8","blocksize":64,"dtype":"bfloat16","shape":[2,64]})",
       "quant_type must be"},
      {"blocksize", good_specs, R"({"quant_type":"nf4","blocksize":65,"dtype":"bfloat16","shape":[2,64]})",
       "blocksize"},
      {"dtype", good_specs, R"({"quant_type":"nf4","blocksize":64,"dtype":"int4","shape":[2,64]})",
       "dtype must be"},
      {"shape overflow", good_specs,
       R"({"quant_type":"nf4","blocksize":64,"dtype":"bfloat16","shape":[4294967296,4294967296,4]})",
       "shape"},
      {"absmax size",
       {{"w", Dtype::U8, {64, 1}}, {"w.absmax", Dtype::F32, {3}}, {"w.quant_map", Dtype::F32, {16}}},
       good_state,
       "expected 2 float32 block scales"},
      {"packed size",
       {{"w", Dtype::U8, {60, 1}}, {"w.absmax", Dtype::F32, {2}}, {"w.quant_map", Dtype::F32, {16}}},
       good_state,
       "expected the packed 4-bit codes (64 bytes)"},
      {"missing absmax",
       {{"w", Dtype::U8, {64, 1}}, {"w.quant_map", Dtype::F32, {16}}},
       good_state,
       "'w.absmax' is missing"},
      {"custom quant_map", good_specs, good_state, "not the standard nf4 code table"},
      {"missing nested", good_specs,
       R"({"quant_type":"nf4","blocksize":64,"dtype":"bfloat16","shape":[2,64],)"
       R"("nested_blocksize":256,"nested_dtype":"float32","nested_offset":0.5})",
       "expected 2 uint8 block scales"},
  };
  for (const Case& c : cases) {
    INFO(std::string(c.what));
    ScratchFolder folder;
    std::vector<moeq::safetensors::TensorSpec> specs = c.specs;
    specs.push_back({"w.quant_state.bitsandbytes__nf4", Dtype::U8, {static_cast<int64_t>(c.state.size())}});
    {
      moeq::safetensors::Writer writer(folder / "q.safetensors", specs, {});
      const std::vector<float> table = moeq::cli::code_table(MOEQ_FORMAT_NF4);
      for (const auto& spec : specs) {
        int64_t bytes = moeq::safetensors::dtype_bytes(spec.dtype);
        for (int64_t size : spec.shape) bytes *= size;
        std::string data(static_cast<size_t>(bytes), '\0');
        if (spec.name == "w.quant_map" && std::string(c.what) != "custom quant_map")
          std::memcpy(data.data(), table.data(), 64);
        if (spec.name == "w.quant_state.bitsandbytes__nf4") data = c.state;
        writer.write(spec.name, data.data(), data.size());
      }
      writer.commit();
    }
    const moeq::safetensors::Checkpoint checkpoint({folder / "q.safetensors"});
    CHECK_THROWS_WITH_AS(moeq::cli::find_quantized_tensors(checkpoint), doctest::Contains(c.message),
                         moeq::safetensors::Error);
  }
}

TEST_CASE("the 4-bit tensors of a checkpoint are found with their sizes before and after") {
  ScratchFolder folder;
  SyntheticCheckpoint checkpoint;
  const auto output = quantized_checkpoint(folder, checkpoint, true);
  const moeq::safetensors::Checkpoint quantized({output});
  const auto found = moeq::cli::find_quantized_tensors(quantized);
  REQUIRE(found.tensors.size() == 4);
  const auto& gate_up = found.tensors[1];
  CHECK(gate_up.base == "model.layers.0.mlp.experts.gate_up_proj");
  CHECK(gate_up.state.shape == std::vector<int64_t>{4, 128, 128});
  CHECK(gate_up.logical_bytes() == 4 * 128 * 128 * 2);
  const uint64_t blocks = 4 * 128 * 128 / 64, json_bytes = gate_up.quant_state.info->bytes();
  CHECK(gate_up.stored_bytes() ==
        4 * 128 * 128 / 2 + blocks + 64 + 4 * ((blocks + 255) / 256) + 1024 + json_bytes);
  CHECK(found.member_keys.size() == 4 * 6);
  CHECK(found.member_keys.count("model.layers.0.mlp.experts.gate_up_proj.nested_quant_map") == 1);
}
