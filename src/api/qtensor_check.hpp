// Checks of moeq_qtensor and moeq_quant_config arguments, shared by quantize,
// dequantize and the expert GEMM.
#pragma once

#include "core/problems.hpp"
#include "core/tensor_check.hpp"

#include <moeq/moeq.h>

#include <string>

namespace moeq {

// Argument structs grow at the end; a caller compiled against this version or a
// later one passes struct_size >= the size this library was built with.
void expect_struct_size(uint32_t struct_size, size_t expected, const std::string& name);

Format check_format(int32_t format, const std::string& name);
void check_blocksize(int64_t blocksize, const std::string& name);

// The sizes a quantized tensor of `numel` elements needs under `config`.
moeq_quant_layout quant_layout(Format format, int64_t blocksize, bool nested, int64_t numel);

// Checks every buffer of `tensor` against its declared format/shape and returns
// them as QuantizedBuffers. With `required` NULL the buffers must share the
// device of `packed`, which is stored in `device`; otherwise they must all be on
// *required (the device of `required_by`, named in the error).
QuantizedBuffers check_qtensor(const moeq_qtensor* tensor, const std::string& name,
                               Device* device, const Device* required = nullptr,
                               const std::string& required_by = "");

// The logical element count of a qtensor's shape (checked).
int64_t qtensor_numel(const moeq_qtensor& tensor, const std::string& name);

}  // namespace moeq
