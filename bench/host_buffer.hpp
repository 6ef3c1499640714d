// Host buffers for the benchmark: 64-byte aligned, seen as DLTensors, and the
// five buffers of a quantized tensor.
#pragma once

#include <dlpack/dlpack.h>
#include <moeq/moeq.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

namespace moeq_bench {

DLDataType float32_type();
DLDataType float16_type();
DLDataType bfloat16_type();
DLDataType int64_type();
const char* dtype_name(DLDataType dtype);

// Exits with moeq_last_error() when a call failed: a benchmark has no use for
// numbers measured on a failing call.
void expect_ok(moeq_status status, const char* call);

class HostBuffer {
 public:
  HostBuffer(DLDataType dtype, std::vector<int64_t> shape);
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  DLTensor* dl() { return &dl_; }
  int64_t numel() const;
  int64_t bytes() const { return numel() * dl_.dtype.bits / 8; }
  template <class T>
  T* as() {
    return static_cast<T*>(dl_.data);
  }
  // N(0, 1) values rounded to the buffer's float dtype.
  void fill_normal(std::mt19937_64& rng);

 private:
  struct FreeDeleter {
    void operator()(void* pointer) const { std::free(pointer); }
  };
  std::vector<int64_t> shape_;
  std::unique_ptr<void, FreeDeleter> storage_;
  DLTensor dl_{};
};

// A quantized tensor's buffers, sized by moeq_quantized_layout.
class QuantizedBuffer {
 public:
  QuantizedBuffer(int32_t format, int32_t blocksize, bool nested, std::vector<int64_t> shape);

  moeq_qtensor* q() { return &q_; }
  const moeq_quant_config& config() const { return config_; }
  // Bytes of the 4-bit payload plus its block statistics.
  int64_t bytes() const;

 private:
  moeq_quant_config config_{};
  std::unique_ptr<HostBuffer> packed_, absmax_, nested_absmax_, nested_code_, nested_offset_;
  moeq_qtensor q_{};
};

}  // namespace moeq_bench
