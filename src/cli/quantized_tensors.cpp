// Grouping a checkpoint's keys into bitsandbytes 4-bit tensors, trusting no
// size until it is checked against moeq_quantized_layout.
#include "cli/quantized_tensors.hpp"

#include "cli/quantizer.hpp"
#include "cli/qtensor_view.hpp"
#include "safetensors/error.hpp"

#include <algorithm>
#include <cstring>

namespace moeq::cli {
namespace {

using safetensors::Dtype;
using safetensors::Error;
using safetensors::TensorRef;

TensorRef require(const safetensors::Checkpoint& checkpoint, const std::string& key,
                  const std::string& base) {
  const TensorRef* found = checkpoint.find(key);
  if (found == nullptr) throw Error("4-bit tensor '" + base + "': '" + key + "' is missing");
  return *found;
}

// Entries are checked by dtype and byte size: bitsandbytes' own shapes
// ([n, 1] for packed bytes) are a convention, not something to rely on.
void expect_bytes(const TensorRef& ref, std::initializer_list<Dtype> dtypes, uint64_t bytes,
                  const std::string& what) {
  const bool dtype_ok = std::find(dtypes.begin(), dtypes.end(), ref.info->dtype) != dtypes.end();
  if (!dtype_ok || ref.info->bytes() != bytes)
    throw Error("'" + ref.info->name + "': expected " + what + " (" + std::to_string(bytes) +
                " bytes), got " + safetensors::dtype_name(ref.info->dtype) + " " +
                safetensors::shape_string(ref.info->shape));
}

std::vector<float> read_floats(const QuantizedTensor& tensor, const TensorRef& ref) {
  std::vector<float> values(ref.info->bytes() / sizeof(float));
  std::memcpy(values.data(), tensor.data(ref), values.size() * sizeof(float));
  return values;
}

QuantizedTensor load(const safetensors::Checkpoint& checkpoint, const TensorRef& quant_state_ref,
                     const std::string& base, int32_t format) {
  QuantizedTensor tensor;
  tensor.base = base;
  tensor.quant_state = quant_state_ref;
  if (quant_state_ref.info->dtype != Dtype::U8 && quant_state_ref.info->dtype != Dtype::I8)
    throw Error("'" + quant_state_ref.info->name + "': expected uint8 JSON bytes, got " +
                safetensors::dtype_name(quant_state_ref.info->dtype));
  tensor.state = parse_quant_state(tensor.data(quant_state_ref), quant_state_ref.info->bytes(),
                                   "'" + quant_state_ref.info->name + "'");
  if (tensor.state.format != format)
    throw Error("'" + quant_state_ref.info->name + "': its JSON says quant_type " +
                format_name(tensor.state.format));
  if (tensor.state.shape.size() > MOEQ_MAX_DIMS)
    throw Error("'" + quant_state_ref.info->name + "': more than " + std::to_string(MOEQ_MAX_DIMS) + " dims");
  const moeq_quant_config config = tensor.state.config();
  tensor.layout.struct_size = sizeof(tensor.layout);
  check_status(moeq_quantized_layout(&config, static_cast<int32_t>(tensor.state.shape.size()),
                                     tensor.state.shape.data(), &tensor.layout),
               "'" + quant_state_ref.info->name + "'");

  const BnbKeys keys = bnb_keys(base, format);
  const moeq_quant_layout& layout = tensor.layout;
  tensor.packed = require(checkpoint, keys.packed, base);
  expect_bytes(tensor.packed, {Dtype::U8, Dtype::I8}, layout.packed_bytes, "the packed 4-bit codes");
  tensor.absmax = require(checkpoint, keys.absmax, base);
  expect_bytes(
      tensor.absmax, {tensor.state.nested ? Dtype::U8 : Dtype::F32}, absmax_bytes(layout),
      std::to_string(layout.absmax_count) + (tensor.state.nested ? " uint8" : " float32") + " block scales");
  tensor.quant_map = require(checkpoint, keys.quant_map, base);
  expect_bytes(tensor.quant_map, {Dtype::F32}, 16 * sizeof(float), "the 16 float32 code values");
  if (read_floats(tensor, tensor.quant_map) != code_table(format))
    throw Error("'" + keys.quant_map + "': not the standard " + format_name(format) +
                " code table; moeq dequantizes only bitsandbytes' own tables");
  if (tensor.state.nested) {
    tensor.nested_absmax = require(checkpoint, keys.nested_absmax, base);
    expect_bytes(tensor.nested_absmax, {Dtype::F32}, nested_absmax_bytes(layout),
                 std::to_string(layout.nested_absmax_count) + " float32 nested scales");
    tensor.nested_quant_map = require(checkpoint, keys.nested_quant_map, base);
    expect_bytes(tensor.nested_quant_map, {Dtype::F32}, nested_code_bytes(layout),
                 "the 256 float32 nested code values");
  }
  return tensor;
}

}  // namespace

int64_t QuantizedTensor::numel() const { return layout.numel; }

uint64_t QuantizedTensor::stored_bytes() const {
  uint64_t bytes =
      packed.info->bytes() + absmax.info->bytes() + quant_map.info->bytes() + quant_state.info->bytes();
  if (state.nested) bytes += nested_absmax.info->bytes() + nested_quant_map.info->bytes();
  return bytes;
}

uint64_t QuantizedTensor::logical_bytes() const {
  return static_cast<uint64_t>(numel()) * safetensors::dtype_bytes(state.dtype);
}

QuantizedTensors find_quantized_tensors(const safetensors::Checkpoint& checkpoint) {
  QuantizedTensors found;
  for (const auto& file : checkpoint.files())
    for (const safetensors::TensorInfo& info : file->tensors()) {
      const auto key = parse_quant_state_key(info.name);
      if (!key) continue;
      QuantizedTensor tensor = load(checkpoint, TensorRef{file.get(), &info}, key->first, key->second);
      for (const TensorRef* ref : {&tensor.packed, &tensor.absmax, &tensor.quant_map, &tensor.quant_state,
                                   &tensor.nested_absmax, &tensor.nested_quant_map})
        if (ref->info != nullptr) found.member_keys.insert(ref->info->name);
      found.tensors.push_back(std::move(tensor));
    }
  std::sort(found.tensors.begin(), found.tensors.end(),
            [](const QuantizedTensor& a, const QuantizedTensor& b) { return a.base < b.base; });
  return found;
}

}  // namespace moeq::cli
