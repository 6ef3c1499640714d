// Quantizes the tensors of a checkpoint one after another, on the CPU or the
// GPU, into host buffers that the writer thread empties while the next ones are worked on.
#pragma once

#include "safetensors/file.hpp"

#include <moeq/moeq.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

namespace moeq::cli {

// Views of one quantized tensor's bytes in host memory.
struct QuantizedBytes {
  moeq_quant_layout layout{};
  const uint8_t* packed = nullptr;
  const uint8_t* absmax = nullptr;
  const uint8_t* nested_absmax = nullptr;  // nested only
  const uint8_t* nested_code = nullptr;    // nested only
  float nested_offset = 0.0f;              // nested only
};

// Host buffers a quantizer fills and lends out: busy from acquire() until the
// borrower is done and release() is called, possibly on another thread.
class ResultSlot {
 public:
  virtual ~ResultSlot() = default;
  // Blocks until the quantizer's work on the slot is complete; the views stay
  // valid until the slot is released.
  virtual QuantizedBytes wait() = 0;

  void acquire();  // blocks while the slot is lent
  void release();

 private:
  std::mutex mutex_;
  std::condition_variable released_;
  bool lent_ = false;
};

// A lent slot: destroying the last copy releases it. Copyable so that the write
// job holding it fits in a std::function.
using QuantizedResult = std::shared_ptr<ResultSlot>;
// Waits for `slot` to be free and lends it out.
QuantizedResult lend(ResultSlot& slot);

class Quantizer {
 public:
  // The results a quantizer lends at once: one being written while the next is made.
  static constexpr int kResultSlots = 2;

  virtual ~Quantizer() = default;
  // Starts quantizing `tensor` of `source`; the result's wait() gives its bytes.
  // Blocks while kResultSlots earlier results are still held. Throws
  // safetensors::Error with the library's message on failure.
  virtual QuantizedResult quantize(const safetensors::File& source,
                                   const safetensors::TensorInfo& tensor) = 0;
};

// device "cpu" or "cuda"; throws safetensors::Error if the device cannot be used.
std::unique_ptr<Quantizer> make_quantizer(const std::string& device, const moeq_quant_config& config);

// The layout of `tensor` under `config` (throws with the library's message).
moeq_quant_layout quantized_layout(const moeq_quant_config& config, const safetensors::TensorInfo& tensor);
// Throws safetensors::Error "<what>: MOEQ_ERR_...: <moeq_last_error()>" unless OK.
void check_status(moeq_status status, const std::string& what);

}  // namespace moeq::cli
