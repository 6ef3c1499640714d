// The element types a safetensors header names: their strings, sizes and DLPack codes.
#pragma once

#include <dlpack/dlpack.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace moeq::safetensors {

enum class Dtype {
  Bool, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64
};

// nullopt for strings safetensors does not define and for its sub-byte types
// (F4, F6_*), which have no byte address moeq could hand out.
std::optional<Dtype> parse_dtype(std::string_view name);
const char* dtype_name(Dtype dtype);
int64_t dtype_bytes(Dtype dtype);
DLDataType to_dl_dtype(Dtype dtype);

// float32, float16 and bfloat16: what moeq quantizes.
bool is_quantizable(Dtype dtype);
// bitsandbytes' name of a quantizable dtype ("bfloat16"), as its quant_state stores it.
const char* torch_dtype_name(Dtype dtype);
std::optional<Dtype> parse_torch_dtype_name(std::string_view name);

}  // namespace moeq::safetensors
