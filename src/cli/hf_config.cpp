// The quantization_config of a quantized checkpoint: which weights are 4-bit, in
// which format, and which linear layers transformers must leave alone.
#include "cli/hf_config.hpp"

#include "safetensors/error.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <optional>

namespace moeq::cli {
namespace {

namespace fs = std::filesystem;
using safetensors::Dtype;
using safetensors::Error;
using safetensors::TensorInfo;

std::string without_suffix(const std::string& text, const std::string& suffix) {
  return text.substr(0, text.size() - suffix.size());
}

// The dtype holding most of the quantized elements: transformers computes in one.
Dtype compute_dtype(const std::vector<const TensorInfo*>& quantized) {
  std::map<Dtype, int64_t> elements;
  for (const TensorInfo* tensor : quantized) elements[tensor->dtype] += tensor->numel;
  return std::max_element(elements.begin(), elements.end(),
                          [](const auto& a, const auto& b) { return a.second < b.second; })
      ->first;
}

// Keys sorted, as transformers writes its configs.
nlohmann::json quantization_config(const moeq_quant_config& config,
                                   const std::vector<const TensorInfo*>& quantized,
                                   const std::vector<std::string>& skipped_modules) {
  std::vector<std::string> parameters;
  for (const TensorInfo* tensor : quantized) parameters.push_back(tensor->name);
  std::sort(parameters.begin(), parameters.end());
  return nlohmann::json{
      {"quant_method", "bitsandbytes"},
      {"load_in_4bit", true},
      {"load_in_8bit", false},
      {"_load_in_4bit", true},
      {"_load_in_8bit", false},
      {"bnb_4bit_quant_type", config.format == MOEQ_FORMAT_NF4 ? "nf4" : "fp4"},
      {"bnb_4bit_use_double_quant", config.nested == 1},
      {"bnb_4bit_compute_dtype", safetensors::torch_dtype_name(compute_dtype(quantized))},
      {"bnb_4bit_quant_storage", "uint8"},
      {"bnb_4bit_blocksize", config.blocksize},
      {"llm_int8_skip_modules", skipped_modules},
      {"llm_int8_threshold", 6.0},
      {"llm_int8_has_fp16_weight", false},
      {"llm_int8_enable_fp32_cpu_offload", false},
      {"moeq_quantized_parameters", parameters},
  };
}

}  // namespace

fs::path find_input_config(const std::vector<fs::path>& inputs) {
  std::optional<fs::path> folder;
  for (const fs::path& input : inputs) {
    std::error_code error;
    const fs::path holder = fs::is_directory(input, error) ? input : input.parent_path();
    const fs::path here = holder.empty() ? fs::path(".") : holder;
    if (folder && !fs::equivalent(*folder, here, error)) return {};
    folder = here;
  }
  if (!folder) return {};
  std::error_code error;
  const fs::path config = *folder / "config.json";
  return fs::is_regular_file(config, error) ? config : fs::path();
}

std::string quantized_hf_config(const std::string& config_text, const fs::path& config_path,
                                const safetensors::Checkpoint& checkpoint, const moeq_quant_config& config,
                                Selection selection) {
  const std::string where = config_path.string() + ": ";
  nlohmann::ordered_json document;
  try {
    document = nlohmann::ordered_json::parse(config_text);
  } catch (const nlohmann::json::exception& error) {
    throw Error(where + "not valid JSON: " + error.what());
  }
  if (!document.is_object()) throw Error(where + "expected a JSON object, as a model's config.json is");

  std::vector<const TensorInfo*> quantized;
  std::vector<std::string> skipped_modules;
  for (const auto& file : checkpoint.files())
    for (const TensorInfo& tensor : file->tensors()) {
      if (should_quantize(tensor, selection)) quantized.push_back(&tensor);
      else if (is_linear_weight(tensor)) skipped_modules.push_back(without_suffix(tensor.name, ".weight"));
    }
  if (quantized.empty()) return config_text;
  if (document.contains("quantization_config"))
    throw Error(where + "already has a quantization_config" +
                (document["quantization_config"].contains("quant_method")
                     ? " (quant_method " + document["quantization_config"]["quant_method"].dump() + ")"
                     : std::string()) +
                "; moeq quantizes float32, float16 and bfloat16 checkpoints");
  std::sort(skipped_modules.begin(), skipped_modules.end());
  document["quantization_config"] = quantization_config(config, quantized, skipped_modules);
  return document.dump(2) + "\n";
}

}  // namespace moeq::cli
