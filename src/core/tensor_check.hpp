// Checks of borrowed DLTensor arguments. Each failure throws an argument error
// that names the argument and what was expected ("x: expected 2 dims [M, K], got
// [3, 4, 5]").
#pragma once

#include "core/error.hpp"
#include "core/scalar.hpp"

#include <dlpack/dlpack.h>

#include <cstdint>
#include <string>
#include <vector>

namespace moeq {

enum class DeviceKind { Cpu, Cuda };

struct Device {
  DeviceKind kind = DeviceKind::Cpu;
  int id = 0;
  bool operator==(const Device& other) const { return kind == other.kind && id == other.id; }
};

std::string shape_string(const DLTensor& tensor);
std::string device_name(const Device& device);

// A tensor (not NULL) of 0..16 dims whose sizes and strides reach only 64-bit byte offsets.
const DLTensor& require_tensor(const DLTensor* tensor, const std::string& name);
// CPU (and pinned host) memory is the CPU; CUDA device memory is CUDA; else an error.
Device device_of(const DLTensor& tensor, const std::string& name);
void expect_device(const DLTensor& tensor, const Device& device, const std::string& name);
// data + byte_offset; a NULL data pointer is an error unless the tensor is empty,
// and so is a first element not aligned to the size of one element (lane).
void* data_pointer(const DLTensor& tensor, const std::string& name);

// float32 / float16 / bfloat16 with one lane, else an error.
ScalarType float_type(const DLTensor& tensor, const std::string& name);
void expect_ndim(const DLTensor& tensor, int ndim, const std::string& name,
                 const std::string& dims_meaning);
// Element count, checked for overflow of int64 and of the addressable bytes (the
// product of the non-zero sizes must fit, so an empty tensor cannot hide huge ones).
int64_t element_count(const DLTensor& tensor, const std::string& name);
int64_t element_count(int32_t ndim, const int64_t* shape, const std::string& name);
// Row-major contiguous (strides NULL, or equal to the compact strides; dims of
// size 1 may carry any stride).
bool is_contiguous(const DLTensor& tensor);
void expect_contiguous(const DLTensor& tensor, const std::string& name);
// Strides in elements, filled in for NULL (compact) strides.
std::vector<int64_t> strides_of(const DLTensor& tensor);
// Bytes spanned by the tensor, [first, last) relative to its data pointer, for
// overlap checks between outputs and inputs.
struct ByteSpan {
  uintptr_t begin = 0;
  uintptr_t end = 0;
};
ByteSpan byte_span(const DLTensor& tensor);
void expect_no_overlap(const DLTensor& output, const std::string& output_name,
                       const DLTensor& input, const std::string& input_name);

}  // namespace moeq
