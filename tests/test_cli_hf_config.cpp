// config.json of a quantized checkpoint: the input's, with the quantization_config
// transformers reads for bitsandbytes, describing exactly what `moeq quantize` did.
#include "cli/quantize_command.hpp"
#include "cli/synthetic_checkpoint.hpp"
#include "safetensors/error.hpp"
#include "support/quantize_options.hpp"
#include "support/scratch_folder.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

using moeq::cli::ExpertLayout;
using moeq::cli::QuantizeOptions;
using moeq::cli::SyntheticCheckpoint;
using moeq::safetensors::Error;
using moeq_test::ScratchFolder;
using moeq_test::quantize_options;
using moeq_test::files_in;

namespace {

// What a model's config.json holds, in a non-alphabetical order that must survive.
const char* const kModelConfig = R"({
  "architectures": ["Glm4MoeLiteForCausalLM"],
  "model_type": "glm4_moe_lite",
  "hidden_size": 128,
  "torch_dtype": "bfloat16",
  "n_routed_experts": 4
})";

// The synthetic checkpoint (2 layers) in `folder`, with kModelConfig beside it.
void write_checkpoint_with_config(const std::filesystem::path& folder,
                                  const SyntheticCheckpoint& checkpoint) {
  moeq::cli::write_synthetic_checkpoint(folder, checkpoint);
  moeq_test::write_bytes(folder / "config.json", kModelConfig);
}

nlohmann::ordered_json read_json(const std::filesystem::path& path) {
  return nlohmann::ordered_json::parse(moeq_test::read_bytes(path));
}

std::vector<std::string> strings(const nlohmann::ordered_json& list) {
  return list.get<std::vector<std::string>>();
}

std::vector<std::string> sorted(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  return names;
}

// Every linear layer of the synthetic checkpoint that --experts-only leaves in 16 bits.
std::vector<std::string> attention_shared_experts_routers_and_head() {
  std::vector<std::string> modules{"lm_head"};
  for (const std::string layer : {"model.layers.0.", "model.layers.1."})
    for (const std::string module : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                     "self_attn.o_proj", "mlp.gate", "mlp.shared_experts.gate_proj",
                                     "mlp.shared_experts.up_proj", "mlp.shared_experts.down_proj"})
      modules.push_back(layer + module);
  return sorted(modules);
}

}  // namespace

TEST_CASE("a checkpoint folder with config.json gets it back with bitsandbytes' quantization_config") {
  ScratchFolder folder;
  SyntheticCheckpoint checkpoint;
  checkpoint.shards = 2;
  write_checkpoint_with_config(folder / "in", checkpoint);
  QuantizeOptions options = quantize_options(folder / "in", folder / "out");
  options.double_quant = true;
  const auto summary = moeq::cli::quantize_checkpoint(options);

  CHECK(summary.written.back() == (folder / "out/config.json").string());
  const nlohmann::ordered_json config = read_json(folder / "out/config.json");
  nlohmann::ordered_json original = nlohmann::ordered_json::parse(kModelConfig);
  for (const auto& [key, value] : original.items()) CHECK(config[key] == value);
  std::vector<std::string> keys;
  for (const auto& [key, value] : config.items()) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"architectures", "model_type", "hidden_size", "torch_dtype",
                                         "n_routed_experts", "quantization_config"});

  const nlohmann::ordered_json& quantization = config["quantization_config"];
  CHECK(quantization["quant_method"] == "bitsandbytes");
  CHECK(quantization["load_in_4bit"] == true);
  CHECK(quantization["load_in_8bit"] == false);
  CHECK(quantization["bnb_4bit_quant_type"] == "nf4");
  CHECK(quantization["bnb_4bit_use_double_quant"] == true);
  CHECK(quantization["bnb_4bit_compute_dtype"] == "bfloat16");
  CHECK(quantization["bnb_4bit_quant_storage"] == "uint8");
  CHECK(quantization["bnb_4bit_blocksize"] == 64);
  CHECK(strings(quantization["moeq_quantized_parameters"]) ==
        std::vector<std::string>{
            "model.layers.0.mlp.experts.down_proj", "model.layers.0.mlp.experts.gate_up_proj",
            "model.layers.1.mlp.experts.down_proj", "model.layers.1.mlp.experts.gate_up_proj"});
  CHECK(strings(quantization["llm_int8_skip_modules"]) == attention_shared_experts_routers_and_head());
}

TEST_CASE("--all-linear leaves only routers and the head to skip; FP4, float16 and the blocksize are named") {
  ScratchFolder folder;
  SyntheticCheckpoint checkpoint;
  checkpoint.layout = ExpertLayout::PerExpert;
  checkpoint.dtype = moeq::safetensors::Dtype::F16;
  write_checkpoint_with_config(folder / "in", checkpoint);
  QuantizeOptions options = quantize_options(folder / "in", folder / "out");
  options.format = "fp4";
  options.blocksize = 128;
  options.selection = moeq::cli::Selection::AllLinear;
  moeq::cli::quantize_checkpoint(options);

  const nlohmann::ordered_json quantization = read_json(folder / "out/config.json")["quantization_config"];
  CHECK(quantization["bnb_4bit_quant_type"] == "fp4");
  CHECK(quantization["bnb_4bit_use_double_quant"] == false);
  CHECK(quantization["bnb_4bit_compute_dtype"] == "float16");
  CHECK(quantization["bnb_4bit_blocksize"] == 128);
  CHECK(strings(quantization["llm_int8_skip_modules"]) ==
        std::vector<std::string>{"lm_head", "model.layers.0.mlp.gate", "model.layers.1.mlp.gate"});
  const std::vector<std::string> quantized = strings(quantization["moeq_quantized_parameters"]);
  CHECK(quantized.size() == 2 * (4 * 3 + 4 + 3));  // per layer: experts, attention, shared experts
  CHECK(std::count(quantized.begin(), quantized.end(), "model.layers.1.mlp.experts.3.down_proj.weight") == 1);
  CHECK(std::count(quantized.begin(), quantized.end(), "model.layers.0.self_attn.q_proj.weight") == 1);
}

TEST_CASE("the config.json beside a single input file is found") {
  ScratchFolder folder;
  write_checkpoint_with_config(folder / "in", SyntheticCheckpoint{});
  moeq::cli::quantize_checkpoint(quantize_options(folder / "in/model.safetensors", folder / "out"));
  CHECK(files_in(folder / "out") == std::vector<std::string>{"config.json", "model.safetensors"});
  CHECK(read_json(folder / "out/config.json")["quantization_config"]["bnb_4bit_quant_type"] == "nf4");
}

TEST_CASE("no config.json is written without one in the input, or when the output is one file") {
  ScratchFolder folder;
  moeq::cli::write_synthetic_checkpoint(folder / "plain", SyntheticCheckpoint{});
  moeq::cli::quantize_checkpoint(quantize_options(folder / "plain", folder / "plain-out"));
  CHECK(files_in(folder / "plain-out") == std::vector<std::string>{"model.safetensors"});

  write_checkpoint_with_config(folder / "in", SyntheticCheckpoint{});
  std::filesystem::create_directories(folder / "single");
  moeq::cli::quantize_checkpoint(quantize_options(folder / "in", folder / "single/out.safetensors"));
  CHECK(files_in(folder / "single") == std::vector<std::string>{"out.safetensors"});
}

TEST_CASE("a checkpoint with nothing to quantize gets its config.json unchanged") {
  ScratchFolder folder;
  std::filesystem::create_directories(folder / "in");
  moeq::safetensors::Writer writer(folder / "in/model.safetensors",
                                   {{"model.norm.weight", moeq::safetensors::Dtype::F32, {4}}}, {});
  const float ones[4] = {1, 1, 1, 1};
  writer.write("model.norm.weight", ones, sizeof ones);
  writer.commit();
  moeq_test::write_bytes(folder / "in/config.json", kModelConfig);
  moeq::cli::quantize_checkpoint(quantize_options(folder / "in", folder / "out"));
  CHECK(moeq_test::read_bytes(folder / "out/config.json") == kModelConfig);
}

TEST_CASE("a config.json that is not a JSON object, or is already quantized, fails before any output") {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"[1, 2]", "expected a JSON object"},
      {"{\"model_type\": ", "not valid JSON"},
      {R"({"quantization_config": {"quant_method": "fp8"}})",
       "already has a quantization_config (quant_method \"fp8\")"}};
  for (const auto& [text, message] : cases) {
    INFO(text);
    ScratchFolder folder;
    moeq::cli::write_synthetic_checkpoint(folder / "in", SyntheticCheckpoint{});
    moeq_test::write_bytes(folder / "in/config.json", text);
    CHECK_THROWS_WITH_AS(moeq::cli::quantize_checkpoint(quantize_options(folder / "in", folder / "out")),
                         doctest::Contains(message.c_str()), Error);
    CHECK_FALSE(std::filesystem::exists(folder / "out"));
  }
}
