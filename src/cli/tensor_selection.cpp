// The key patterns of expert and linear weights in Hugging Face checkpoints.
#include "cli/tensor_selection.hpp"

#include <regex>
#include <string_view>

namespace moeq::cli {
namespace {

bool is_float_with_elements(const safetensors::TensorInfo& tensor) {
  return safetensors::is_quantizable(tensor.dtype) && tensor.numel > 0;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// The module a `<module path>.weight` key belongs to: "gate_proj" for
// "model.layers.0.mlp.gate_proj.weight".
std::string_view module_name(std::string_view key) {
  key.remove_suffix(std::string_view(".weight").size());
  const size_t dot = key.rfind('.');
  return dot == std::string_view::npos ? key : key.substr(dot + 1);
}

}  // namespace

bool is_expert_weight(const safetensors::TensorInfo& tensor) {
  static const std::regex fused(R"((.*\.)?experts\.(gate_up_proj|gate_proj|up_proj|down_proj))");
  static const std::regex per_expert(
      R"((.*\.)?experts\.[0-9]+\.(gate_up_proj|gate_proj|up_proj|down_proj|w1|w2|w3)\.weight)");
  if (!is_float_with_elements(tensor)) return false;
  if (tensor.shape.size() == 3) return std::regex_match(tensor.name, fused);
  if (tensor.shape.size() == 2) return std::regex_match(tensor.name, per_expert);
  return false;
}

bool is_linear_weight(const safetensors::TensorInfo& tensor) {
  if (!is_float_with_elements(tensor) || tensor.shape.size() != 2 || !ends_with(tensor.name, ".weight"))
    return false;
  const std::string_view module = module_name(tensor.name);
  const bool embedding = module.find("embed") != std::string_view::npos || module == "wte" || module == "wpe";
  const bool norm = module.find("norm") != std::string_view::npos;
  return !embedding && !norm;
}

bool is_other_linear_weight(const safetensors::TensorInfo& tensor) {
  if (!is_linear_weight(tensor)) return false;
  const std::string_view module = module_name(tensor.name);
  // Routers: mlp.gate (Qwen, DeepSeek, GLM), block_sparse_moe.gate (Mixtral),
  // mlp.router (gpt-oss), shared_expert_gate (Qwen): never gate_proj.
  const bool router = ends_with(module, "gate") || ends_with(module, "router");
  return !router && module != "lm_head";
}

bool should_quantize(const safetensors::TensorInfo& tensor, Selection selection) {
  return is_expert_weight(tensor) || (selection == Selection::AllLinear && is_other_linear_weight(tensor));
}

}  // namespace moeq::cli
