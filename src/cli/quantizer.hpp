// Quantizes one tensor of a checkpoint, on the CPU or the GPU, into host bytes
// ready to be written.
#pragma once

#include "safetensors/header.hpp"

#include <moeq/moeq.h>

#include <memory>
#include <string>

namespace moeq::cli {

// Views of the quantizer's own buffers, valid until its next quantize call.
struct QuantizedBytes {
  moeq_quant_layout layout{};
  const uint8_t* packed = nullptr;
  const uint8_t* absmax = nullptr;
  const uint8_t* nested_absmax = nullptr;  // nested only
  const uint8_t* nested_code = nullptr;    // nested only
  float nested_offset = 0.0f;              // nested only
};

class Quantizer {
 public:
  virtual ~Quantizer() = default;
  // `data` holds `tensor`'s bytes in host memory, with any alignment. Throws
  // safetensors::Error with the library's message on failure.
  virtual QuantizedBytes quantize(const void* data, const safetensors::TensorInfo& tensor) = 0;
};

// device "cpu" or "cuda"; throws safetensors::Error if the device cannot be used.
std::unique_ptr<Quantizer> make_quantizer(const std::string& device, const moeq_quant_config& config);

// The layout of `tensor` under `config` (throws with the library's message).
moeq_quant_layout quantized_layout(const moeq_quant_config& config, const safetensors::TensorInfo& tensor);
// Throws safetensors::Error "<what>: MOEQ_ERR_...: <moeq_last_error()>" unless OK.
void check_status(moeq_status status, const std::string& what);

}  // namespace moeq::cli
