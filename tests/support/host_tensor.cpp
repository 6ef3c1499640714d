// Test helpers: host tensors and quantized host tensors.
#include "support/host_tensor.hpp"

#include "core/scalar.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <stdexcept>

namespace moeq_test {

DLDataType float32_type() { return {kDLFloat, 32, 1}; }
DLDataType float16_type() { return {kDLFloat, 16, 1}; }
DLDataType bfloat16_type() { return {kDLBfloat, 16, 1}; }
DLDataType uint8_type() { return {kDLUInt, 8, 1}; }
DLDataType int32_type() { return {kDLInt, 32, 1}; }
DLDataType int64_type() { return {kDLInt, 64, 1}; }

double half_to_double(uint16_t bits) { return moeq::float16_bits_to_float(bits); }
double bfloat16_to_double(uint16_t bits) { return moeq::bfloat16_bits_to_float(bits); }

HostTensor::HostTensor(DLDataType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides)
    : dtype_(dtype), shape_(std::move(shape)), strides_(std::move(strides)) {
  int64_t span = 1;
  if (strides_.empty()) {
    for (int64_t size : shape_) span *= size;
  } else {
    for (size_t i = 0; i < shape_.size(); ++i)
      if (shape_[i] == 0) span = 0;
    if (span != 0)
      for (size_t i = 0; i < shape_.size(); ++i) span += (shape_[i] - 1) * strides_[i];
  }
  storage_.assign(static_cast<size_t>(span * (dtype.bits / 8) + 16), 0xFF);
  rebind();
}

HostTensor::HostTensor(const HostTensor& other)
    : dtype_(other.dtype_), shape_(other.shape_), strides_(other.strides_), storage_(other.storage_) {
  rebind();
}

HostTensor& HostTensor::operator=(const HostTensor& other) {
  dtype_ = other.dtype_;
  shape_ = other.shape_;
  strides_ = other.strides_;
  storage_ = other.storage_;
  rebind();
  return *this;
}

void HostTensor::rebind() {
  dl_ = DLTensor{};
  dl_.data = storage_.data();
  dl_.device = {kDLCPU, 0};
  dl_.ndim = static_cast<int32_t>(shape_.size());
  dl_.dtype = dtype_;
  dl_.shape = shape_.data();
  dl_.strides = strides_.empty() ? nullptr : strides_.data();
  dl_.byte_offset = 0;
}

int64_t HostTensor::numel() const {
  int64_t count = 1;
  for (int64_t size : shape_) count *= size;
  return count;
}

int64_t HostTensor::offset_of(std::initializer_list<int64_t> index) const {
  if (index.size() != shape_.size()) throw std::logic_error("HostTensor: wrong index rank");
  int64_t offset = 0, compact = 1;
  std::vector<int64_t> idx(index);
  for (int64_t i = static_cast<int64_t>(shape_.size()) - 1; i >= 0; --i) {
    const int64_t stride = strides_.empty() ? compact : strides_[i];
    offset += idx[i] * stride;
    compact *= shape_[i];
  }
  return offset;
}

double HostTensor::flat(int64_t i) const {
  const uint8_t* p = storage_.data();
  if (dtype_.code == kDLFloat && dtype_.bits == 32) { float v; std::memcpy(&v, p + 4 * i, 4); return v; }
  if (dtype_.code == kDLFloat && dtype_.bits == 64) { double v; std::memcpy(&v, p + 8 * i, 8); return v; }
  if (dtype_.code == kDLFloat && dtype_.bits == 16) { uint16_t v; std::memcpy(&v, p + 2 * i, 2); return half_to_double(v); }
  if (dtype_.code == kDLBfloat) { uint16_t v; std::memcpy(&v, p + 2 * i, 2); return bfloat16_to_double(v); }
  if (dtype_.code == kDLInt && dtype_.bits == 32) { int32_t v; std::memcpy(&v, p + 4 * i, 4); return v; }
  if (dtype_.code == kDLInt && dtype_.bits == 64) { int64_t v; std::memcpy(&v, p + 8 * i, 8); return static_cast<double>(v); }
  if (dtype_.bits == 8) return p[i];
  throw std::logic_error("HostTensor: unsupported dtype");
}

void HostTensor::set_flat(int64_t i, double value) {
  uint8_t* p = storage_.data();
  if (dtype_.code == kDLFloat && dtype_.bits == 32) { float v = static_cast<float>(value); std::memcpy(p + 4 * i, &v, 4); return; }
  if (dtype_.code == kDLFloat && dtype_.bits == 64) { std::memcpy(p + 8 * i, &value, 8); return; }
  if (dtype_.code == kDLFloat && dtype_.bits == 16) { uint16_t v = moeq::float_to_float16_bits(static_cast<float>(value)); std::memcpy(p + 2 * i, &v, 2); return; }
  if (dtype_.code == kDLBfloat) { uint16_t v = moeq::float_to_bfloat16_bits(static_cast<float>(value)); std::memcpy(p + 2 * i, &v, 2); return; }
  if (dtype_.code == kDLInt && dtype_.bits == 32) { int32_t v = static_cast<int32_t>(value); std::memcpy(p + 4 * i, &v, 4); return; }
  if (dtype_.code == kDLInt && dtype_.bits == 64) { int64_t v = static_cast<int64_t>(value); std::memcpy(p + 8 * i, &v, 8); return; }
  if (dtype_.bits == 8) { p[i] = static_cast<uint8_t>(value); return; }
  throw std::logic_error("HostTensor: unsupported dtype");
}

double HostTensor::at(std::initializer_list<int64_t> index) const { return flat(offset_of(index)); }
void HostTensor::set(std::initializer_list<int64_t> index, double value) { set_flat(offset_of(index), value); }

void HostTensor::poison() { std::memset(storage_.data(), 0xFF, storage_.size()); }

void HostTensor::fill_normal(std::mt19937_64& rng, double scale) {
  std::normal_distribution<double> normal(0.0, scale);
  if (!strides_.empty()) {
    // Fill the whole span so every strided element is set.
    const int64_t span = static_cast<int64_t>((storage_.size() - 16) / (dtype_.bits / 8));
    for (int64_t i = 0; i < span; ++i) set_flat(i, normal(rng));
    return;
  }
  for (int64_t i = 0; i < numel(); ++i) set_flat(i, normal(rng));
}

moeq_qtensor qtensor_header(int32_t format, int32_t blocksize, bool nested, const std::vector<int64_t>& shape,
                            DLDataType dtype) {
  moeq_qtensor q{};
  q.struct_size = sizeof(moeq_qtensor);
  q.format = format;
  q.blocksize = blocksize;
  q.nested = nested ? 1 : 0;
  q.ndim = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) q.shape[i] = shape[i];
  q.dtype = dtype;
  return q;
}

HostQTensor::HostQTensor(int32_t format, int32_t blocksize, bool nested, std::vector<int64_t> shape,
                         DLDataType dtype) {
  config_.struct_size = sizeof(moeq_quant_config);
  config_.format = format;
  config_.blocksize = blocksize;
  config_.nested = nested ? 1 : 0;
  moeq_quant_layout layout{};
  layout.struct_size = sizeof(layout);
  REQUIRE(moeq_quantized_layout(&config_, static_cast<int32_t>(shape.size()), shape.data(), &layout) == MOEQ_OK);
  packed = HostTensor(uint8_type(), {layout.packed_bytes});
  absmax = HostTensor(layout.absmax_dtype, {layout.absmax_count});
  nested_absmax = HostTensor(float32_type(), {layout.nested_absmax_count});
  nested_code = HostTensor(float32_type(), {layout.nested_code_count});
  nested_offset = HostTensor(float32_type(), {layout.nested_offset_count});
  q_ = qtensor_header(format, blocksize, nested, shape, dtype);
  q_.packed = *packed.dl();
  q_.absmax = *absmax.dl();
  q_.nested_absmax = *nested_absmax.dl();
  q_.nested_code = *nested_code.dl();
  q_.nested_offset = *nested_offset.dl();
}

void quantize_into(const HostTensor& input, HostQTensor& out) {
  const moeq_quant_config config = out.config();
  const moeq_status status = moeq_quantize(input.dl(), &config, out.q(), nullptr, 0, nullptr);
  INFO(std::string(moeq_last_error()));
  REQUIRE(status == MOEQ_OK);
}

}  // namespace moeq_test
