// The CPU quantizer (the library threads it over all cores), result slots, and
// the choice of device.
#include "cli/quantizer.hpp"

#include "cli/host_qtensor_buffers.hpp"
#include "cli/scratch_buffer.hpp"
#include "safetensors/error.hpp"

#include <array>
#include <cstring>

namespace moeq::cli {

#if MOEQ_WITH_CUDA
std::unique_ptr<Quantizer> make_cuda_quantizer(const moeq_quant_config& config);  // cuda_quantizer.cpp
#endif

namespace {

// Quantized synchronously: complete when lent.
class CpuResultSlot final : public ResultSlot {
 public:
  QuantizedBytes wait() override { return buffers.bytes(); }
  HostQTensorBuffers<ScratchBuffer> buffers;
};

// Reads each tensor in place from the mapping: no copy of the input at all.
class CpuQuantizer final : public Quantizer {
 public:
  explicit CpuQuantizer(const moeq_quant_config& config) : config_(config) {}

  QuantizedResult quantize(const safetensors::File& source, const safetensors::TensorInfo& tensor) override {
    const moeq_quant_layout layout = quantized_layout(config_, tensor);
    const void* data = source.data(tensor);
    // Another writer may have left the tensor unaligned; the library reads whole elements.
    const int64_t element_bytes = safetensors::dtype_bytes(tensor.dtype);
    if (reinterpret_cast<uintptr_t>(data) % element_bytes != 0) {
      uint8_t* aligned = staging_.get(tensor.bytes());
      std::memcpy(aligned, data, tensor.bytes());
      data = aligned;
    }
    DLTensor input{const_cast<void*>(data),
                   {kDLCPU, 0},
                   static_cast<int32_t>(tensor.shape.size()),
                   safetensors::to_dl_dtype(tensor.dtype),
                   const_cast<int64_t*>(tensor.shape.data()),
                   nullptr,
                   0};
    CpuResultSlot& slot = slots_[next_slot_++ % kResultSlots];
    QuantizedResult result = lend(slot);
    QTensorView out(layout, slot.buffers.prepare(layout), DLDevice{kDLCPU, 0});
    check_status(moeq_quantize(&input, &config_, out.get(), nullptr, 0, nullptr),
                 "quantize '" + tensor.name + "'");
    return result;
  }

 private:
  moeq_quant_config config_;
  std::array<CpuResultSlot, kResultSlots> slots_;
  uint64_t next_slot_ = 0;
  ScratchBuffer staging_;
};

}  // namespace

void ResultSlot::acquire() {
  std::unique_lock<std::mutex> lock(mutex_);
  released_.wait(lock, [&] { return !lent_; });
  lent_ = true;
}

void ResultSlot::release() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    lent_ = false;
  }
  released_.notify_all();
}

QuantizedResult lend(ResultSlot& slot) {
  slot.acquire();
  return QuantizedResult(&slot, [](ResultSlot* lent) { lent->release(); });
}

void check_status(moeq_status status, const std::string& what) {
  if (status != MOEQ_OK)
    throw safetensors::Error(what + ": " + moeq_status_name(status) + ": " + moeq_last_error());
}

moeq_quant_layout quantized_layout(const moeq_quant_config& config, const safetensors::TensorInfo& tensor) {
  moeq_quant_layout layout{};
  layout.struct_size = sizeof(layout);
  check_status(
      moeq_quantized_layout(&config, static_cast<int32_t>(tensor.shape.size()), tensor.shape.data(), &layout),
      "'" + tensor.name + "'");
  return layout;
}

std::unique_ptr<Quantizer> make_quantizer(const std::string& device, const moeq_quant_config& config) {
  if (device == "cpu") return std::make_unique<CpuQuantizer>(config);
  if (device != "cuda") throw safetensors::Error("--device: expected cpu or cuda, got '" + device + "'");
#if MOEQ_WITH_CUDA
  return make_cuda_quantizer(config);
#else
  throw safetensors::Error(std::string("--device cuda: this moeq was built without CUDA (") +
                           moeq_build_info() + ")");
#endif
}

}  // namespace moeq::cli
