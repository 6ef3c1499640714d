// The bitsandbytes state-dict entries of one 4-bit tensor: their key names and
// shapes, and the quant_state JSON (see /work/shared/FORMAT.md).
#pragma once

#include "safetensors/dtype.hpp"
#include "safetensors/writer.hpp"

#include <moeq/moeq.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace moeq::cli {

// What bitsandbytes' QuantState.as_dict(packed=True) puts in its JSON.
struct QuantState {
  int32_t format = MOEQ_FORMAT_NF4;
  int32_t blocksize = 64;
  safetensors::Dtype dtype = safetensors::Dtype::BF16;  // the logical dtype
  std::vector<int64_t> shape;
  bool nested = false;
  float nested_offset = 0.0f;
  moeq_quant_config config() const;
};

// The keys of a tensor stored under `base` (the original key: for a 2-D
// `...gate_proj.weight` the packed bytes keep that name, for a fused 3-D
// `...experts.gate_up_proj` too).
struct BnbKeys {
  std::string packed, absmax, quant_map, nested_absmax, nested_quant_map, quant_state;
};
BnbKeys bnb_keys(const std::string& base, int32_t format);

const char* format_name(int32_t format);  // "nf4" | "fp4"
// The base key and format of a `<base>.quant_state.bitsandbytes__<format>` key.
std::optional<std::pair<std::string, int32_t>> parse_quant_state_key(const std::string& key);

// The entries to write for `state`, sized by moeq_quantized_layout (`layout`).
std::vector<safetensors::TensorSpec> bnb_tensor_specs(const std::string& base, const QuantState& state,
                                                      const moeq_quant_layout& layout);

// The JSON, padded with trailing spaces (insignificant to every JSON reader) to
// a length that does not depend on nested_offset: the safetensors header, which
// holds that length, is written before the offset is known.
std::string quant_state_json(const QuantState& state);
// Parses the JSON of a quant_state tensor; throws safetensors::Error naming `where`.
QuantState parse_quant_state(const uint8_t* bytes, uint64_t size, const std::string& where);

// The 16 float32 values of the format's code table, as bitsandbytes stores quant_map.
std::vector<float> code_table(int32_t format);

}  // namespace moeq::cli
