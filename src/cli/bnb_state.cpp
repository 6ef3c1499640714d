// bitsandbytes key names and the quant_state JSON, written the way bitsandbytes
// writes it and read with every field checked.
#include "cli/bnb_state.hpp"

#include "core/format.hpp"
#include "safetensors/error.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

namespace moeq::cli {
namespace {

using safetensors::Dtype;
using safetensors::Error;

constexpr const char* kQuantStatePrefix = ".quant_state.bitsandbytes__";

// bitsandbytes' key order; the offset is passed in so the longest one can be measured.
std::string dump_quant_state(const QuantState& state, double nested_offset) {
  nlohmann::ordered_json document;
  document["quant_type"] = format_name(state.format);
  document["blocksize"] = state.blocksize;
  document["dtype"] = safetensors::torch_dtype_name(state.dtype);
  document["shape"] = state.shape;
  if (state.nested) {
    document["nested_blocksize"] = MOEQ_NESTED_BLOCKSIZE;
    document["nested_dtype"] = "float32";
    document["nested_offset"] = nested_offset;
  }
  return document.dump();
}

}  // namespace

moeq_quant_config QuantState::config() const {
  return moeq_quant_config{sizeof(moeq_quant_config), format, blocksize, nested ? 1 : 0};
}

const char* format_name(int32_t format) { return format == MOEQ_FORMAT_FP4 ? "fp4" : "nf4"; }

BnbKeys bnb_keys(const std::string& base, int32_t format) {
  return BnbKeys{base,
                 base + ".absmax",
                 base + ".quant_map",
                 base + ".nested_absmax",
                 base + ".nested_quant_map",
                 base + kQuantStatePrefix + format_name(format)};
}

std::optional<std::pair<std::string, int32_t>> parse_quant_state_key(const std::string& key) {
  for (int32_t format : {MOEQ_FORMAT_NF4, MOEQ_FORMAT_FP4}) {
    const std::string suffix = std::string(kQuantStatePrefix) + format_name(format);
    if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0)
      return std::make_pair(key.substr(0, key.size() - suffix.size()), format);
  }
  return std::nullopt;
}

std::vector<safetensors::TensorSpec> bnb_tensor_specs(const std::string& base, const QuantState& state,
                                                      const moeq_quant_layout& layout) {
  const BnbKeys keys = bnb_keys(base, state.format);
  std::vector<safetensors::TensorSpec> specs{
      {keys.packed, Dtype::U8, {layout.packed_bytes, 1}},
      {keys.absmax, state.nested ? Dtype::U8 : Dtype::F32, {layout.absmax_count}},
      {keys.quant_map, Dtype::F32, {16}},
      {keys.quant_state, Dtype::U8, {static_cast<int64_t>(quant_state_json(state).size())}}};
  if (state.nested) {
    specs.push_back({keys.nested_absmax, Dtype::F32, {layout.nested_absmax_count}});
    specs.push_back({keys.nested_quant_map, Dtype::F32, {layout.nested_code_count}});
  }
  return specs;
}

std::string quant_state_json(const QuantState& state) {
  if (!state.nested) return dump_quant_state(state, 0.0);
  if (!std::isfinite(state.nested_offset))
    throw Error("nested_offset is not finite (the tensor holds infinities): JSON cannot store it");
  // No double prints longer than the smallest normal one with its sign.
  const size_t padded_size = dump_quant_state(state, -std::numeric_limits<double>::min()).size();
  std::string text = dump_quant_state(state, state.nested_offset);
  if (text.size() > padded_size) throw Error("internal: quant_state JSON longer than its reserved size");
  text.append(padded_size - text.size(), ' ');
  return text;
}

QuantState parse_quant_state(const uint8_t* bytes, uint64_t size, const std::string& where) {
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(bytes, bytes + size);
  } catch (const nlohmann::json::exception& error) {
    throw Error(where + ": not valid JSON: " + error.what());
  }
  const auto field = [&](const char* name) -> const nlohmann::json& {
    if (!document.is_object() || !document.contains(name)) throw Error(where + ": missing \"" + name + "\"");
    return document[name];
  };
  QuantState state;
  const nlohmann::json& quant_type = field("quant_type");
  if (quant_type == "nf4") state.format = MOEQ_FORMAT_NF4;
  else if (quant_type == "fp4") state.format = MOEQ_FORMAT_FP4;
  else throw Error(where + ": quant_type must be \"nf4\" or \"fp4\", got " + quant_type.dump());
  const nlohmann::json& blocksize = field("blocksize");
  if (!blocksize.is_number_integer() || blocksize.get<int64_t>() < MOEQ_MIN_BLOCKSIZE ||
      blocksize.get<int64_t>() > MOEQ_MAX_BLOCKSIZE)
    throw Error(where + ": blocksize must be an integer in [32, 4096], got " + blocksize.dump());
  state.blocksize = blocksize.get<int32_t>();
  const nlohmann::json& dtype = field("dtype");
  const std::optional<Dtype> logical =
      dtype.is_string() ? safetensors::parse_torch_dtype_name(dtype.get<std::string>()) : std::nullopt;
  if (!logical) throw Error(where + ": dtype must be float32, float16 or bfloat16, got " + dtype.dump());
  state.dtype = *logical;
  const nlohmann::json& shape = field("shape");
  if (!shape.is_array()) throw Error(where + ": shape must be an array, got " + shape.dump());
  for (const nlohmann::json& size : shape) {
    if (!size.is_number_unsigned() || size.get<uint64_t>() > uint64_t{1} << 62)
      throw Error(where + ": shape entries must be non-negative integers, got " + shape.dump());
    state.shape.push_back(size.get<int64_t>());
  }
  state.nested = document.contains("nested_offset");
  if (state.nested) {
    if (field("nested_blocksize") != MOEQ_NESTED_BLOCKSIZE || field("nested_dtype") != "float32")
      throw Error(where + ": only nested_blocksize 256 with nested_dtype float32 exists in bitsandbytes");
    const nlohmann::json& offset = field("nested_offset");
    if (!offset.is_number() || !std::isfinite(offset.get<double>()))
      throw Error(where + ": nested_offset must be a finite number, got " + offset.dump());
    state.nested_offset = static_cast<float>(offset.get<double>());
  }
  return state;
}

std::vector<float> code_table(int32_t format) {
  std::vector<float> table(16);
  // bitsandbytes builds its FP4 table from Python ints, where -0 is 0: code 8 is stored as +0.0.
  for (uint32_t code = 0; code < 16; ++code) {
    const float value = code_value(static_cast<Format>(format), code);
    table[code] = value == 0.0f ? 0.0f : value;
  }
  return table;
}

}  // namespace moeq::cli
