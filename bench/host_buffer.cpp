// Host buffers for the benchmark.
#include "host_buffer.hpp"

#include "core/scalar.hpp"

#include <cstdio>
#include <cstring>

namespace moeq_bench {

DLDataType float32_type() { return {kDLFloat, 32, 1}; }
DLDataType float16_type() { return {kDLFloat, 16, 1}; }
DLDataType bfloat16_type() { return {kDLBfloat, 16, 1}; }
DLDataType int64_type() { return {kDLInt, 64, 1}; }

const char* dtype_name(DLDataType dtype) {
  if (dtype.code == kDLBfloat) return "bf16";
  return dtype.bits == 16 ? "f16" : "f32";
}

void expect_ok(moeq_status status, const char* call) {
  if (status == MOEQ_OK) return;
  std::fprintf(stderr, "%s failed: %s: %s\n", call, moeq_status_name(status), moeq_last_error());
  std::exit(1);
}

HostBuffer::HostBuffer(DLDataType dtype, std::vector<int64_t> shape) : shape_(std::move(shape)) {
  dl_.device = {kDLCPU, 0};
  dl_.dtype = dtype;
  dl_.ndim = static_cast<int32_t>(shape_.size());
  dl_.shape = shape_.data();
  constexpr size_t kAlignment = 64;
  const size_t size = (static_cast<size_t>(bytes()) + kAlignment - 1) / kAlignment * kAlignment;
  storage_.reset(std::aligned_alloc(kAlignment, size == 0 ? kAlignment : size));
  if (!storage_) {
    std::fprintf(stderr, "out of memory allocating %zu bytes\n", size);
    std::exit(1);
  }
  std::memset(storage_.get(), 0, size);
  dl_.data = storage_.get();
}

int64_t HostBuffer::numel() const {
  int64_t count = 1;
  for (int64_t size : shape_) count *= size;
  return count;
}

void HostBuffer::fill_normal(std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t count = numel();
  if (dl_.dtype.code == kDLBfloat) {
    for (int64_t i = 0; i < count; ++i)
      as<uint16_t>()[i] = moeq::float_to_bfloat16_bits(normal(rng));
  } else if (dl_.dtype.bits == 16) {
    for (int64_t i = 0; i < count; ++i)
      as<uint16_t>()[i] = moeq::float_to_float16_bits(normal(rng));
  } else {
    for (int64_t i = 0; i < count; ++i) as<float>()[i] = normal(rng);
  }
}

QuantizedBuffer::QuantizedBuffer(int32_t format, int32_t blocksize, bool nested,
                                 std::vector<int64_t> shape) {
  config_ = {sizeof(moeq_quant_config), format, blocksize, nested ? 1 : 0};
  moeq_quant_layout layout{};
  layout.struct_size = sizeof(layout);
  expect_ok(
      moeq_quantized_layout(&config_, static_cast<int32_t>(shape.size()), shape.data(), &layout),
      "moeq_quantized_layout");
  packed_ = std::make_unique<HostBuffer>(DLDataType{kDLUInt, 8, 1},
                                         std::vector<int64_t>{layout.packed_bytes});
  absmax_ =
      std::make_unique<HostBuffer>(layout.absmax_dtype, std::vector<int64_t>{layout.absmax_count});
  nested_absmax_ = std::make_unique<HostBuffer>(float32_type(),
                                                std::vector<int64_t>{layout.nested_absmax_count});
  nested_code_ =
      std::make_unique<HostBuffer>(float32_type(), std::vector<int64_t>{layout.nested_code_count});
  nested_offset_ = std::make_unique<HostBuffer>(float32_type(),
                                                std::vector<int64_t>{layout.nested_offset_count});
  q_.struct_size = sizeof(q_);
  q_.packed = *packed_->dl();
  q_.absmax = *absmax_->dl();
  q_.nested_absmax = *nested_absmax_->dl();
  q_.nested_code = *nested_code_->dl();
  q_.nested_offset = *nested_offset_->dl();
}

int64_t QuantizedBuffer::bytes() const {
  return packed_->bytes() + absmax_->bytes() + nested_absmax_->bytes() + nested_code_->bytes() +
         nested_offset_->bytes();
}

}  // namespace moeq_bench
