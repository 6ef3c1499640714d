// Test helpers: host tensors that own their memory and expose a DLTensor, and
// quantized host tensors allocated from moeq_quantized_layout.
#pragma once

#include <moeq/moeq.h>

#include <cstdint>
#include <random>
#include <vector>

namespace moeq_test {

DLDataType float32_type();
DLDataType float16_type();
DLDataType bfloat16_type();
DLDataType uint8_type();
DLDataType int32_type();
DLDataType int64_type();

// Owns a host buffer; `dl` views it with the given shape and optional strides (in
// elements; empty = contiguous). The buffer is sized for the largest offset the
// strides reach and is poisoned (all bytes 0xFF: NaN for every float dtype).
class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DLDataType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides = {});
  HostTensor(const HostTensor& other);
  HostTensor& operator=(const HostTensor& other);

  DLTensor* dl() { return &dl_; }
  const DLTensor* dl() const { return &dl_; }
  int64_t numel() const;
  const std::vector<int64_t>& shape() const { return shape_; }
  void* data() { return storage_.data(); }
  template <class T> T* as() { return reinterpret_cast<T*>(storage_.data()); }
  template <class T> const T* as() const { return reinterpret_cast<const T*>(storage_.data()); }
  std::vector<uint8_t>& bytes() { return storage_; }

  // Element at a multi-index (through the strides), as a double.
  double at(std::initializer_list<int64_t> index) const;
  void set(std::initializer_list<int64_t> index, double value);
  // Flat element i of a contiguous tensor.
  double flat(int64_t i) const;
  void set_flat(int64_t i, double value);

  void poison();
  // Every element drawn from N(0, scale^2), rounded to the tensor's dtype.
  void fill_normal(std::mt19937_64& rng, double scale = 1.0);

 private:
  void rebind();
  int64_t offset_of(std::initializer_list<int64_t> index) const;
  DLDataType dtype_{};
  std::vector<int64_t> shape_, strides_;
  std::vector<uint8_t> storage_;
  DLTensor dl_{};
};

// A quantized tensor's five host buffers, sized by moeq_quantized_layout, with a
// moeq_qtensor pointing at them (ready for moeq_quantize to fill).
class HostQTensor {
 public:
  HostQTensor(int32_t format, int32_t blocksize, bool nested, std::vector<int64_t> shape,
              DLDataType dtype);
  HostQTensor(const HostQTensor&) = delete;
  HostQTensor& operator=(const HostQTensor&) = delete;

  moeq_qtensor* q() { return &q_; }
  const moeq_qtensor* q() const { return &q_; }
  moeq_quant_config config() const { return config_; }
  HostTensor packed, absmax, nested_absmax, nested_code, nested_offset;

 private:
  moeq_quant_config config_{};
  moeq_qtensor q_{};
};

// A moeq_qtensor describing a quantized tensor of `shape`, its buffers not set yet.
moeq_qtensor qtensor_header(int32_t format, int32_t blocksize, bool nested, const std::vector<int64_t>& shape,
                            DLDataType dtype);

// Quantize `input` into a fresh HostQTensor (checks the call succeeded).
void quantize_into(const HostTensor& input, HostQTensor& out);

// Float64 value of a 16-bit pattern / float for references.
double half_to_double(uint16_t bits);
double bfloat16_to_double(uint16_t bits);

}  // namespace moeq_test
