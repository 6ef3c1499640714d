// `moeq quantize` on generated checkpoints of both expert layouts: the exact
// bitsandbytes keys, values decoded independently within the 4-bit bound,
// everything else copied, and no output at all when the input is malformed.
#include "cli/quantize_command.hpp"
#include "cli/synthetic_checkpoint.hpp"
#include "core/scalar.hpp"
#include "safetensors/checkpoint.hpp"
#include "safetensors/error.hpp"
#include "safetensors/file.hpp"
#include "support/quantize_options.hpp"
#include "support/scratch_folder.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>

using moeq::cli::ExpertLayout;
using moeq::cli::QuantizeOptions;
using moeq::cli::SyntheticCheckpoint;
using moeq::safetensors::Dtype;
using moeq::safetensors::File;
using moeq::safetensors::TensorInfo;
using moeq_test::ScratchFolder;
using moeq_test::quantize_options;
using moeq_test::files_in;

namespace {

// FORMAT.md's code tables, typed in here so the test does not trust moeq's.
constexpr double kNf4[16] = {-1.0,
                             -0.6961928009986877,
                             -0.5250730514526367,
                             -0.39491748809814453,
                             -0.28444138169288635,
                             -0.18477343022823334,
                             -0.09105003625154495,
                             0.0,
                             0.07958029955625534,
                             0.16093020141124725,
                             0.24611230194568634,
                             0.33791524171829224,
                             0.44070982933044434,
                             0.5626170039176941,
                             0.7229568362236023,
                             1.0};
constexpr double kFp4Magnitude[8] = {0,        0.0625 / 12, 8.0 / 12, 12.0 / 12,
                                     4.0 / 12, 6.0 / 12,    2.0 / 12, 3.0 / 12};
constexpr double kNf4HalfStep = (1.0 - 0.6961928009986877) / 2;
constexpr double kFp4HalfStep = (1.0 - 8.0 / 12) / 2;

double fp4_value(int code) { return (code & 8 ? -1 : 1) * kFp4Magnitude[code & 7]; }

bool is_expert_key(const std::string& name) { return name.find("mlp.experts.") != std::string::npos; }

double element(const File& file, const TensorInfo& tensor, int64_t i) {
  const uint8_t* data = file.data(tensor);
  if (tensor.dtype == Dtype::F32) {
    float value;
    std::memcpy(&value, data + 4 * i, 4);
    return value;
  }
  uint16_t bits;
  std::memcpy(&bits, data + 2 * i, 2);
  return tensor.dtype == Dtype::F16 ? moeq::float16_bits_to_float(bits) : moeq::bfloat16_bits_to_float(bits);
}

const TensorInfo& require(const File& file, const std::string& name) {
  const TensorInfo* found = file.find(name);
  INFO("key ", name);
  REQUIRE(found != nullptr);
  return *found;
}

std::vector<float> floats(const File& file, const TensorInfo& tensor) {
  std::vector<float> values(tensor.bytes() / 4);
  std::memcpy(values.data(), file.data(tensor), tensor.bytes());
  return values;
}

nlohmann::json quant_state(const File& file, const std::string& key) {
  const TensorInfo& tensor = require(file, key);
  CHECK(tensor.dtype == Dtype::U8);
  CHECK(tensor.shape.size() == 1);
  const auto* text = reinterpret_cast<const char*>(file.data(tensor));
  return nlohmann::json::parse(text, text + tensor.bytes());
}

// Checks `base` in `output` against the original tensor, decoding the packed
// nibbles with FORMAT.md's rules: element 2j in the high nibble of byte j,
// value = table[code] * block scale, every element within half a code step.
void check_quantized(const File& output, const File& input, const TensorInfo& original,
                     const std::string& format, int64_t blocksize, bool nested) {
  const std::string& base = original.name;
  const int64_t n = original.numel, blocks = (n + blocksize - 1) / blocksize;
  const nlohmann::json state = quant_state(output, base + ".quant_state.bitsandbytes__" + format);
  CHECK(state["quant_type"] == format);
  CHECK(state["blocksize"] == blocksize);
  CHECK(state["dtype"] == (original.dtype == Dtype::BF16  ? "bfloat16"
                           : original.dtype == Dtype::F16 ? "float16"
                                                          : "float32"));
  CHECK(state["shape"].get<std::vector<int64_t>>() == original.shape);

  const TensorInfo& packed = require(output, base);
  CHECK(packed.dtype == Dtype::U8);
  CHECK(packed.shape == std::vector<int64_t>{(n + 1) / 2, 1});
  const TensorInfo& quant_map = require(output, base + ".quant_map");
  CHECK(quant_map.shape == std::vector<int64_t>{16});
  const std::vector<float> table = floats(output, quant_map);
  for (int code = 0; code < 16; ++code)
    CHECK(table[code] == doctest::Approx(format == "nf4" ? kNf4[code] : fp4_value(code)).epsilon(1e-7));
  const TensorInfo& absmax = require(output, base + ".absmax");
  CHECK(absmax.shape == std::vector<int64_t>{blocks});

  std::vector<double> scales(static_cast<size_t>(blocks));
  if (nested) {
    CHECK(absmax.dtype == Dtype::U8);
    CHECK(state["nested_blocksize"] == 256);
    CHECK(state["nested_dtype"] == "float32");
    const float offset = state["nested_offset"].get<float>();
    const std::vector<float> nested_scales = floats(output, require(output, base + ".nested_absmax"));
    const std::vector<float> nested_code = floats(output, require(output, base + ".nested_quant_map"));
    CHECK(nested_scales.size() == static_cast<size_t>((blocks + 255) / 256));
    CHECK(nested_code.size() == 256);
    for (int64_t b = 0; b < blocks; ++b)
      scales[b] = nested_code[output.data(absmax)[b]] * nested_scales[b / 256] + offset;
  } else {
    CHECK(absmax.dtype == Dtype::F32);
    CHECK(output.find(base + ".nested_absmax") == nullptr);
    CHECK(state.contains("nested_offset") == false);
    const std::vector<float> stored = floats(output, absmax);
    for (int64_t b = 0; b < blocks; ++b) scales[b] = stored[b];
  }

  const double half_step = format == "nf4" ? kNf4HalfStep : kFp4HalfStep;
  int64_t outside_bound = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    double block_max = 0.0;
    for (int64_t i = b * blocksize; i < std::min(n, (b + 1) * blocksize); ++i)
      block_max = std::max(block_max, std::fabs(element(input, original, i)));
    if (!nested) CHECK(scales[b] == block_max);  // plain absmax is exact
    for (int64_t i = b * blocksize; i < std::min(n, (b + 1) * blocksize); ++i) {
      const uint8_t byte = output.data(packed)[i / 2];
      const int code = i % 2 == 0 ? byte >> 4 : byte & 15;
      const double restored = (format == "nf4" ? kNf4[code] : fp4_value(code)) * scales[b];
      const double bound = half_step * block_max + std::fabs(scales[b] - block_max) + 1e-6 * block_max;
      if (std::fabs(restored - element(input, original, i)) > bound) ++outside_bound;
    }
  }
  CHECK(outside_bound == 0);
  if (n % 2 == 1)
    CHECK((output.data(packed)[n / 2] & 15) == (format == "nf4" ? 7 : 0));  // the padding nibble is +0
}

// Every input tensor: expert weights quantized, the rest byte-identical.
void check_output(const std::filesystem::path& input_path, const std::filesystem::path& output_path,
                  const std::string& format, int64_t blocksize, bool nested) {
  const File input(input_path), output(output_path);
  int64_t quantized = 0;
  for (const TensorInfo& tensor : input.tensors()) {
    INFO("tensor ", tensor.name);
    if (is_expert_key(tensor.name)) {
      check_quantized(output, input, tensor, format, blocksize, nested);
      ++quantized;
    } else {
      const TensorInfo& copy = require(output, tensor.name);
      CHECK(copy.dtype == tensor.dtype);
      CHECK(copy.shape == tensor.shape);
      CHECK(std::memcmp(output.data(copy), input.data(tensor), tensor.bytes()) == 0);
    }
  }
  CHECK(quantized > 0);
  CHECK(output.header().metadata.at("format") == "pt");
}

}  // namespace

TEST_CASE(
    "fused 3-D expert tensors become bitsandbytes NF4 tensors under their own key; the rest is copied") {
  ScratchFolder folder;
  const auto inputs = moeq::cli::write_synthetic_checkpoint(folder / "in", SyntheticCheckpoint{});
  const auto summary =
      moeq::cli::quantize_checkpoint(quantize_options(inputs[0], folder / "out.safetensors"));
  CHECK(summary.quantized_tensors == 4);  // gate_up_proj and down_proj of 2 layers
  check_output(inputs[0], folder / "out.safetensors", "nf4", 64, false);
  const File output(folder / "out.safetensors");
  CHECK(output.find("model.layers.0.mlp.experts.gate_up_proj.absmax") != nullptr);
}

TEST_CASE("per-expert 2-D weights of original checkpoints are quantized under their .weight key") {
  ScratchFolder folder;
  SyntheticCheckpoint checkpoint;
  checkpoint.layout = ExpertLayout::PerExpert;
  const auto inputs = moeq::cli::write_synthetic_checkpoint(folder / "in", checkpoint);
  const auto summary =
      moeq::cli::quantize_checkpoint(quantize_options(inputs[0], folder / "out.safetensors"));
  CHECK(summary.quantized_tensors == 2 * 4 * 3);
  check_output(inputs[0], folder / "out.safetensors", "nf4", 64, false);
  const File output(folder / "out.safetensors");
  CHECK(output.find("model.layers.1.mlp.experts.3.down_proj.weight.quant_state.bitsandbytes__nf4") !=
        nullptr);
}

TEST_CASE("double quantization stores uint8 absmax with nested scales, code map and offset") {
  ScratchFolder folder;
  SyntheticCheckpoint checkpoint;
  checkpoint.experts = 8;  // more than 256 blocks per tensor: several nested blocks
  const auto inputs = moeq::cli::write_synthetic_checkpoint(folder / "in", checkpoint);
  QuantizeOptions options = quantize_options(inputs[0], folder / "out.safetensors");
  options.double_quant = true;
  moeq::cli::quantize_checkpoint(options);
  check_output(inputs[0], folder / "out.safetensors", "nf4", 64, true);
}

TEST_CASE(
    "FP4 with another blocksize, float16 and float32 weights, and odd sizes with a partial last block") {
  for (const Dtype dtype : {Dtype::F16, Dtype::F32}) {
    ScratchFolder folder;
    SyntheticCheckpoint checkpoint;
    checkpoint.layout = ExpertLayout::PerExpert;
    checkpoint.dtype = dtype;
    checkpoint.hidden = 33;
    checkpoint.intermediate = 3;  // 99 elements per expert projection
    checkpoint.layers = 1;
    const auto inputs = moeq::cli::write_synthetic_checkpoint(folder / "in", checkpoint);
    QuantizeOptions options = quantize_options(inputs[0], folder / "out.safetensors");
    options.format = "fp4";
    options.blocksize = 32;
    moeq::cli::quantize_checkpoint(options);
    check_output(inputs[0], folder / "out.safetensors", "fp4", 32, false);
  }
}

TEST_CASE(
    "--all-linear adds attention and shared-expert weights, never embeddings, norms, routers or the head") {
  ScratchFolder folder;
  const auto inputs = moeq::cli::write_synthetic_checkpoint(folder / "in", SyntheticCheckpoint{});
  QuantizeOptions options = quantize_options(inputs[0], folder / "out.safetensors");
  options.selection = moeq::cli::Selection::AllLinear;
  moeq::cli::quantize_checkpoint(options);
  const File output(folder / "out.safetensors");
  const auto is_quantized = [&](const std::string& key) {
    return output.find(key + ".quant_state.bitsandbytes__nf4") != nullptr;
  };
  CHECK(is_quantized("model.layers.0.self_attn.q_proj.weight"));
  CHECK(is_quantized("model.layers.1.mlp.shared_experts.down_proj.weight"));
  CHECK(is_quantized("model.layers.1.mlp.experts.gate_up_proj"));
  CHECK_FALSE(is_quantized("model.embed_tokens.weight"));
  CHECK_FALSE(is_quantized("lm_head.weight"));
  CHECK_FALSE(is_quantized("model.layers.0.mlp.gate.weight"));
  CHECK_FALSE(is_quantized("model.layers.0.input_layernorm.weight"));
  CHECK_FALSE(is_quantized("model.layers.0.mlp.gate.e_score_correction_bias"));
}

TEST_CASE("a sharded checkpoint is written as the same shards plus an index of every output tensor") {
  ScratchFolder folder;
  SyntheticCheckpoint checkpoint;
  checkpoint.layers = 3;
  checkpoint.shards = 3;
  const auto inputs = moeq::cli::write_synthetic_checkpoint(folder / "in", checkpoint);
  const auto summary = moeq::cli::quantize_checkpoint(quantize_options(folder / "in", folder / "out"));
  CHECK(summary.quantized_tensors == 6);
  CHECK(files_in(folder / "out") ==
        std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                 "model-00003-of-00003.safetensors", "model.safetensors.index.json"});
  for (const auto& input : inputs) check_output(input, folder / "out" / input.filename(), "nf4", 64, false);
  const moeq::safetensors::Checkpoint output({folder / "out"});
  CHECK(output.files().size() == 3);
  const nlohmann::json index =
      nlohmann::json::parse(moeq_test::read_bytes(folder / "out/model.safetensors.index.json"));
  CHECK(index["weight_map"].size() == output.tensor_count());
  CHECK(index["weight_map"]["model.layers.2.mlp.experts.down_proj.absmax"] ==
        "model-00003-of-00003.safetensors");
}

TEST_CASE("quantizing the same checkpoint twice gives identical bytes") {
  ScratchFolder folder;
  const auto inputs = moeq::cli::write_synthetic_checkpoint(folder / "in", SyntheticCheckpoint{});
  QuantizeOptions options = quantize_options(inputs[0], folder / "a.safetensors");
  options.double_quant = true;
  moeq::cli::quantize_checkpoint(options);
  options.output = (folder / "b.safetensors").string();
  moeq::cli::quantize_checkpoint(options);
  CHECK(moeq_test::read_bytes(folder / "a.safetensors") == moeq_test::read_bytes(folder / "b.safetensors"));
}
