// Checks of borrowed DLTensor arguments (see tensor_check.hpp).
#include "core/tensor_check.hpp"

#include <algorithm>
#include <limits>
#include <sstream>

namespace moeq {

std::string dtype_name(DLDataType dtype) {
  std::string base;
  switch (dtype.code) {
    case kDLInt: base = "int"; break;
    case kDLUInt: base = "uint"; break;
    case kDLFloat: base = "float"; break;
    case kDLBfloat: base = "bfloat"; break;
    case kDLBool: base = "bool"; break;
    default: base = "dtype_code" + std::to_string(dtype.code) + "_"; break;
  }
  std::string name = base + std::to_string(dtype.bits);
  if (dtype.lanes != 1) name += "x" + std::to_string(dtype.lanes);
  return name;
}

std::string shape_string(const DLTensor& tensor) {
  std::ostringstream text;
  text << '[';
  for (int32_t i = 0; i < tensor.ndim; ++i) {
    if (i) text << ", ";
    text << (tensor.shape ? tensor.shape[i] : -1);
  }
  text << ']';
  return text.str();
}

std::string device_name(const Device& device) {
  return device.kind == DeviceKind::Cpu ? std::string("cpu")
                                        : "cuda:" + std::to_string(device.id);
}

const DLTensor& require_tensor(const DLTensor* tensor, const std::string& name) {
  if (tensor == nullptr) fail_argument(name, "expected a tensor, got NULL");
  if (tensor->ndim < 0 || tensor->ndim > 16)
    fail_argument(name, "expected 0..16 dims, got ndim " + std::to_string(tensor->ndim));
  if (tensor->ndim > 0 && tensor->shape == nullptr)
    fail_argument(name, "shape pointer is NULL for a tensor with " +
                            std::to_string(tensor->ndim) + " dims");
  for (int32_t i = 0; i < tensor->ndim; ++i)
    if (tensor->shape[i] < 0)
      fail_argument(name, "expected non-negative sizes, got " + shape_string(*tensor));
  const int64_t count = element_count(*tensor, name);
  // Every offset the strides reach must be a byte offset of 64 bits, so that no
  // later index computation can overflow (such a tensor describes no real memory).
  const __int128 element_bytes = std::max(1, (tensor->dtype.bits * tensor->dtype.lanes + 7) / 8);
  __int128 reach = std::max<int64_t>(count - 1, 0);
  if (tensor->strides != nullptr) {
    reach = 0;
    for (int32_t i = 0; i < tensor->ndim; ++i) {
      const __int128 stride = tensor->strides[i];
      reach += static_cast<__int128>(std::max<int64_t>(tensor->shape[i] - 1, 0)) *
               (stride < 0 ? -stride : stride);
    }
  }
  if ((reach + 1) * element_bytes > std::numeric_limits<int64_t>::max())
    fail_argument(name, "sizes and strides reach past 2^63 bytes, got shape " +
                            shape_string(*tensor));
  return *tensor;
}

Device device_of(const DLTensor& tensor, const std::string& name) {
  switch (tensor.device.device_type) {
    case kDLCPU:
    case kDLCUDAHost: return Device{DeviceKind::Cpu, 0};
    case kDLCUDA:
    case kDLCUDAManaged: return Device{DeviceKind::Cuda, tensor.device.device_id};
    default:
      fail_argument(name, "expected a CPU or CUDA tensor, got DLPack device type " +
                              std::to_string(tensor.device.device_type));
  }
}

void expect_device(const DLTensor& tensor, const Device& device, const std::string& name) {
  const Device actual = device_of(tensor, name);
  if (!(actual == device))
    fail_argument(name, "expected a tensor on " + device_name(device) +
                            " like the other arguments, got one on " + device_name(actual));
}

void* data_pointer(const DLTensor& tensor, const std::string& name) {
  if (tensor.data == nullptr) {
    if (element_count(tensor, name) == 0) return nullptr;
    fail_argument(name, "data pointer is NULL");
  }
  char* first = static_cast<char*>(tensor.data) + tensor.byte_offset;
  // Elements are read whole (a misaligned float is undefined behaviour on the CPU
  // and a fault on the GPU), so they must sit at multiples of their size.
  const uintptr_t lane_bytes = (tensor.dtype.bits + 7u) / 8u;
  if (lane_bytes > 1 && (lane_bytes & (lane_bytes - 1)) == 0 &&
      reinterpret_cast<uintptr_t>(first) % lane_bytes != 0)
    fail_argument(name, "expected data + byte_offset aligned to " + std::to_string(lane_bytes) +
                            " bytes (the size of a " + dtype_name(tensor.dtype) + " element)");
  return first;
}

ScalarType float_type(const DLTensor& tensor, const std::string& name) {
  const DLDataType dtype = tensor.dtype;
  if (dtype.lanes == 1) {
    if (dtype.code == kDLFloat && dtype.bits == 32) return ScalarType::Float32;
    if (dtype.code == kDLFloat && dtype.bits == 16) return ScalarType::Float16;
    if (dtype.code == kDLBfloat && dtype.bits == 16) return ScalarType::BFloat16;
  }
  fail_argument(name, "expected dtype float32, float16 or bfloat16, got " + dtype_name(dtype));
}

void expect_ndim(const DLTensor& tensor, int ndim, const std::string& name,
                 const std::string& dims_meaning) {
  if (tensor.ndim != ndim)
    fail_argument(name, "expected " + std::to_string(ndim) + " dims " + dims_meaning + ", got " +
                            shape_string(tensor));
}

int64_t element_count(int32_t ndim, const int64_t* shape, const std::string& name) {
  // Sizes of 0 count as 1 in the bound, so that the product of any subset of the
  // sizes (a compact stride) fits too.
  int64_t bound = 1;
  bool empty = false;
  for (int32_t i = 0; i < ndim; ++i) {
    if (shape[i] < 0) fail_argument(name, "expected non-negative sizes");
    if (shape[i] == 0) {
      empty = true;
      continue;
    }
    if (bound > std::numeric_limits<int64_t>::max() / 8 / shape[i])
      fail_argument(name, "element count overflows: sizes too large");
    bound *= shape[i];
  }
  return empty ? 0 : bound;
}

int64_t element_count(const DLTensor& tensor, const std::string& name) {
  return element_count(tensor.ndim, tensor.shape, name);
}

std::vector<int64_t> strides_of(const DLTensor& tensor) {
  std::vector<int64_t> strides(static_cast<size_t>(tensor.ndim));
  int64_t compact = 1;
  for (int32_t i = tensor.ndim - 1; i >= 0; --i) {
    strides[i] = tensor.strides ? tensor.strides[i] : compact;
    compact *= tensor.shape[i];
  }
  return strides;
}

bool is_contiguous(const DLTensor& tensor) {
  if (tensor.strides == nullptr) return true;
  int64_t compact = 1;
  for (int32_t i = tensor.ndim - 1; i >= 0; --i) {
    if (tensor.shape[i] != 1 && tensor.strides[i] != compact) return false;
    compact *= tensor.shape[i];
  }
  return true;
}

void expect_contiguous(const DLTensor& tensor, const std::string& name) {
  if (!is_contiguous(tensor))
    fail_argument(name, "expected a contiguous (row-major) tensor, got strides that are not");
}

ByteSpan byte_span(const DLTensor& tensor) {
  ByteSpan span;
  const uintptr_t base = reinterpret_cast<uintptr_t>(tensor.data) + tensor.byte_offset;
  const int64_t element_bytes = (tensor.dtype.bits * tensor.dtype.lanes + 7) / 8;
  int64_t low = 0, high = 0;
  const std::vector<int64_t> strides = strides_of(tensor);
  for (int32_t i = 0; i < tensor.ndim; ++i) {
    if (tensor.shape[i] == 0) return span;
    const int64_t reach = (tensor.shape[i] - 1) * strides[i];
    if (reach < 0) low += reach; else high += reach;
  }
  span.begin = base + static_cast<uintptr_t>(low * element_bytes);
  span.end = base + static_cast<uintptr_t>((high + 1) * element_bytes);
  return span;
}

void expect_no_overlap(const DLTensor& output, const std::string& output_name,
                       const DLTensor& input, const std::string& input_name) {
  if (output.device.device_type != input.device.device_type ||
      output.device.device_id != input.device.device_id)
    return;
  const ByteSpan out = byte_span(output);
  const ByteSpan in = byte_span(input);
  if (out.begin < out.end && in.begin < in.end && out.begin < in.end && in.begin < out.end)
    fail_argument(output_name, "must not overlap " + input_name + " (outputs cannot alias inputs)");
}

}  // namespace moeq
