// The bitsandbytes 4-bit tensors of a checkpoint, found by their quant_state
// keys and checked against the sizes their quant_state implies.
#pragma once

#include "cli/bnb_state.hpp"
#include "safetensors/checkpoint.hpp"

#include <set>
#include <string>
#include <vector>

namespace moeq::cli {

struct QuantizedTensor {
  std::string base;
  QuantState state;
  moeq_quant_layout layout{};
  safetensors::TensorRef packed, absmax, quant_map, nested_absmax, nested_quant_map, quant_state;

  const uint8_t* data(const safetensors::TensorRef& ref) const { return ref.file->data(*ref.info); }
  int64_t numel() const;
  uint64_t stored_bytes() const;   // all of its entries
  uint64_t logical_bytes() const;  // numel in its logical dtype
};

struct QuantizedTensors {
  std::vector<QuantizedTensor> tensors;  // sorted by base name
  std::set<std::string> member_keys;     // every key that belongs to one of them
};

// Throws safetensors::Error for a quant_state whose JSON, companion tensors,
// sizes or code table do not match (moeq dequantizes only the standard tables).
QuantizedTensors find_quantized_tensors(const safetensors::Checkpoint& checkpoint);

}  // namespace moeq::cli
