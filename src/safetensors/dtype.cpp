// One table of safetensors dtypes serves every lookup.
#include "safetensors/dtype.hpp"

#include <array>

namespace moeq::safetensors {
namespace {

struct DtypeRow {
  Dtype dtype;
  const char* name;
  int64_t bytes;
  DLDataType dl;
  const char* torch_name;  // only for the dtypes moeq quantizes
};

constexpr std::array<DtypeRow, 17> kDtypes{{
    {Dtype::Bool, "BOOL", 1, {kDLBool, 8, 1}, nullptr},
    {Dtype::U8, "U8", 1, {kDLUInt, 8, 1}, nullptr},
    {Dtype::I8, "I8", 1, {kDLInt, 8, 1}, nullptr},
    {Dtype::F8_E5M2, "F8_E5M2", 1, {kDLFloat8_e5m2, 8, 1}, nullptr},
    {Dtype::F8_E4M3, "F8_E4M3", 1, {kDLFloat8_e4m3fn, 8, 1}, nullptr},
    {Dtype::F8_E8M0, "F8_E8M0", 1, {kDLFloat8_e8m0fnu, 8, 1}, nullptr},
    {Dtype::I16, "I16", 2, {kDLInt, 16, 1}, nullptr},
    {Dtype::U16, "U16", 2, {kDLUInt, 16, 1}, nullptr},
    {Dtype::F16, "F16", 2, {kDLFloat, 16, 1}, "float16"},
    {Dtype::BF16, "BF16", 2, {kDLBfloat, 16, 1}, "bfloat16"},
    {Dtype::I32, "I32", 4, {kDLInt, 32, 1}, nullptr},
    {Dtype::U32, "U32", 4, {kDLUInt, 32, 1}, nullptr},
    {Dtype::F32, "F32", 4, {kDLFloat, 32, 1}, "float32"},
    {Dtype::C64, "C64", 8, {kDLComplex, 64, 1}, nullptr},
    {Dtype::F64, "F64", 8, {kDLFloat, 64, 1}, nullptr},
    {Dtype::I64, "I64", 8, {kDLInt, 64, 1}, nullptr},
    {Dtype::U64, "U64", 8, {kDLUInt, 64, 1}, nullptr},
}};

const DtypeRow& row_of(Dtype dtype) {
  for (const DtypeRow& row : kDtypes)
    if (row.dtype == dtype) return row;
  return kDtypes[0];  // unreachable: every enumerator has a row
}

}  // namespace

std::optional<Dtype> parse_dtype(std::string_view name) {
  for (const DtypeRow& row : kDtypes)
    if (name == row.name) return row.dtype;
  return std::nullopt;
}

const char* dtype_name(Dtype dtype) { return row_of(dtype).name; }
int64_t dtype_bytes(Dtype dtype) { return row_of(dtype).bytes; }
DLDataType to_dl_dtype(Dtype dtype) { return row_of(dtype).dl; }
bool is_quantizable(Dtype dtype) { return row_of(dtype).torch_name != nullptr; }
const char* torch_dtype_name(Dtype dtype) { return row_of(dtype).torch_name; }

std::optional<Dtype> parse_torch_dtype_name(std::string_view name) {
  for (const DtypeRow& row : kDtypes)
    if (row.torch_name != nullptr && name == row.torch_name) return row.dtype;
  return std::nullopt;
}

}  // namespace moeq::safetensors
