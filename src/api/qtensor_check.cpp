// Checks of moeq_qtensor and moeq_quant_config arguments.
#include "api/qtensor_check.hpp"

namespace moeq {

void expect_struct_size(uint32_t struct_size, size_t expected, const std::string& name) {
  if (struct_size < expected)
    fail_argument(name + ".struct_size", "expected at least " + std::to_string(expected) +
                                             " (sizeof the struct), got " +
                                             std::to_string(struct_size));
}

Format check_format(int32_t format, const std::string& name) {
  if (format == MOEQ_FORMAT_NF4) return Format::NF4;
  if (format == MOEQ_FORMAT_FP4) return Format::FP4;
  fail_argument(name, "expected MOEQ_FORMAT_NF4 (1) or MOEQ_FORMAT_FP4 (2), got " +
                          std::to_string(format));
}

void check_blocksize(int64_t blocksize, const std::string& name) {
  if (!is_valid_blocksize(blocksize))
    fail_argument(name, "expected a power of two in [32, 4096], got " + std::to_string(blocksize));
}

moeq_quant_layout quant_layout(Format, int64_t blocksize, bool nested, int64_t numel) {
  moeq_quant_layout layout{};
  layout.struct_size = sizeof(moeq_quant_layout);
  layout.numel = numel;
  layout.packed_bytes = ceil_div(numel, 2);
  layout.absmax_count = ceil_div(numel, blocksize);
  layout.absmax_dtype = nested ? DLDataType{kDLUInt, 8, 1} : DLDataType{kDLFloat, 32, 1};
  layout.nested_absmax_count = nested ? ceil_div(layout.absmax_count, MOEQ_NESTED_BLOCKSIZE) : 0;
  layout.nested_code_count = nested ? MOEQ_NESTED_CODE_SIZE : 0;
  layout.nested_offset_count = nested ? 1 : 0;
  // The GPU nested path keeps the float32 absmax of every block, and one double
  // per lane of the deterministic mean, in the workspace.
  layout.quantize_workspace_bytes =
      nested ? layout.absmax_count * 4 + 64 + 8 * 1024 : 0;
  return layout;
}

int64_t qtensor_numel(const moeq_qtensor& tensor, const std::string& name) {
  if (tensor.ndim < 0 || tensor.ndim > MOEQ_MAX_DIMS)
    fail_argument(name + ".ndim", "expected 0.." + std::to_string(MOEQ_MAX_DIMS) + ", got " +
                                      std::to_string(tensor.ndim));
  return element_count(tensor.ndim, tensor.shape, name + ".shape");
}

namespace {

// One buffer of a qtensor: on `device`, contiguous, `count` elements of `dtype`
// (for `packed`, any 1-byte dtype holding `count` bytes).
void* check_buffer(const DLTensor& buffer, const std::string& name, const Device& device,
                   int64_t count, DLDataType dtype, bool any_byte_dtype) {
  require_tensor(&buffer, name);
  expect_device(buffer, device, name);
  if (any_byte_dtype) {
    if (buffer.dtype.bits != 8 || buffer.dtype.lanes != 1)
      fail_argument(name, "expected a 1-byte dtype (uint8), got " + dtype_name(buffer.dtype));
  } else if (buffer.dtype.code != dtype.code || buffer.dtype.bits != dtype.bits ||
             buffer.dtype.lanes != dtype.lanes) {
    fail_argument(name, "expected dtype " + dtype_name(dtype) + ", got " +
                            dtype_name(buffer.dtype));
  }
  const int64_t actual = element_count(buffer, name);
  if (actual != count)
    fail_argument(name, "expected " + std::to_string(count) + " elements, got " +
                            std::to_string(actual) + " (shape " + shape_string(buffer) + ")");
  expect_contiguous(buffer, name);
  return data_pointer(buffer, name);
}

}  // namespace

QuantizedBuffers check_qtensor(const moeq_qtensor* tensor, const std::string& name,
                               Device* device, const Device* required,
                               const std::string& required_by) {
  if (tensor == nullptr) fail_argument(name, "expected a moeq_qtensor, got NULL");
  expect_struct_size(tensor->struct_size, sizeof(moeq_qtensor), name);
  QuantizedBuffers buffers;
  buffers.format = check_format(tensor->format, name + ".format");
  check_blocksize(tensor->blocksize, name + ".blocksize");
  buffers.blocksize = tensor->blocksize;
  if (tensor->nested != 0 && tensor->nested != 1)
    fail_argument(name + ".nested", "expected 0 or 1, got " + std::to_string(tensor->nested));
  buffers.nested = tensor->nested == 1;
  buffers.numel = qtensor_numel(*tensor, name);
  {
    const DLTensor probe{nullptr, {kDLCPU, 0}, 0, tensor->dtype, nullptr, nullptr, 0};
    float_type(probe, name + ".dtype");
  }
  *device = device_of(require_tensor(&tensor->packed, name + ".packed"), name + ".packed");
  if (required != nullptr && !(*device == *required))
    fail_argument(name + ".packed", "expected a tensor on " + device_name(*required) + " like " +
                                        required_by + ", got one on " + device_name(*device));
  const moeq_quant_layout layout =
      quant_layout(buffers.format, buffers.blocksize, buffers.nested, buffers.numel);
  buffers.packed = static_cast<uint8_t*>(check_buffer(
      tensor->packed, name + ".packed", *device, layout.packed_bytes, {kDLUInt, 8, 1}, true));
  if (buffers.nested) {
    buffers.absmax_codes = static_cast<uint8_t*>(check_buffer(
        tensor->absmax, name + ".absmax", *device, layout.absmax_count, {kDLUInt, 8, 1}, false));
    buffers.nested_absmax = static_cast<float*>(
        check_buffer(tensor->nested_absmax, name + ".nested_absmax", *device,
                     layout.nested_absmax_count, {kDLFloat, 32, 1}, false));
    buffers.nested_code = static_cast<float*>(check_buffer(
        tensor->nested_code, name + ".nested_code", *device, MOEQ_NESTED_CODE_SIZE,
        {kDLFloat, 32, 1}, false));
    buffers.nested_offset = static_cast<float*>(check_buffer(
        tensor->nested_offset, name + ".nested_offset", *device, 1, {kDLFloat, 32, 1}, false));
  } else {
    buffers.absmax = static_cast<float*>(check_buffer(
        tensor->absmax, name + ".absmax", *device, layout.absmax_count, {kDLFloat, 32, 1}, false));
  }
  return buffers;
}

}  // namespace moeq
