// The GPU quantizer (built with CUDA only): each tensor is copied to the
// device, quantized there by the library, and its 4-bit form copied back to be
// written. Device buffers grow to the largest tensor and are reused.
#include "cli/host_qtensor_buffers.hpp"
#include "cli/quantizer.hpp"
#include "safetensors/error.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>

namespace moeq::cli {
namespace {

void check_cuda(cudaError_t status, const std::string& what) {
  if (status != cudaSuccess) throw safetensors::Error(what + ": " + cudaGetErrorString(status));
}

// Device memory from the library (moeq_tensor_empty), grown on demand.
class DeviceScratch {
 public:
  explicit DeviceScratch(int device_id) : device_{kDLCUDA, device_id} {}
  ~DeviceScratch() { moeq_tensor_free(tensor_); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  void* get(uint64_t bytes) {
    if (tensor_ == nullptr || bytes > capacity_) {
      moeq_tensor_free(tensor_);
      tensor_ = nullptr;
      const int64_t shape = static_cast<int64_t>(std::max<uint64_t>(bytes, 1));
      check_status(moeq_tensor_empty(1, &shape, DLDataType{kDLUInt, 8, 1}, device_, &tensor_),
                   "allocating " + std::to_string(bytes) + " bytes on the GPU");
      capacity_ = bytes;
    }
    return tensor_->dl_tensor.data;
  }

 private:
  DLDevice device_;
  DLManagedTensorVersioned* tensor_ = nullptr;
  uint64_t capacity_ = 0;
};

class CudaQuantizer final : public Quantizer {
 public:
  CudaQuantizer(const moeq_quant_config& config, int device_id)
      : config_(config), device_id_(device_id), input_(device_id), packed_(device_id), absmax_(device_id),
        nested_absmax_(device_id), nested_code_(device_id), nested_offset_(device_id) {}

  QuantizedBytes quantize(const void* data, const safetensors::TensorInfo& tensor) override {
    const moeq_quant_layout layout = quantized_layout(config_, tensor);
    const bool nested = layout.nested_code_count > 0;
    void* device_input = input_.get(tensor.bytes());
    check_cuda(cudaMemcpy(device_input, data, tensor.bytes(), cudaMemcpyHostToDevice),
               "copying '" + tensor.name + "' to the GPU");
    DLTensor input{device_input,
                   {kDLCUDA, device_id_},
                   static_cast<int32_t>(tensor.shape.size()),
                   safetensors::to_dl_dtype(tensor.dtype),
                   const_cast<int64_t*>(tensor.shape.data()),
                   nullptr,
                   0};
    const QTensorBuffers device{packed_.get(layout.packed_bytes), absmax_.get(absmax_bytes(layout)),
                                nested ? nested_absmax_.get(nested_absmax_bytes(layout)) : nullptr,
                                nested ? nested_code_.get(nested_code_bytes(layout)) : nullptr,
                                nested ? nested_offset_.get(sizeof(float)) : nullptr};
    QTensorView out(layout, device, DLDevice{kDLCUDA, device_id_});
    check_status(moeq_quantize(&input, &config_, out.get(), nullptr, 0, nullptr),
                 "quantize '" + tensor.name + "' on the GPU");

    // The legacy default stream orders these copies after the kernels.
    const QTensorBuffers host = host_.prepare(layout);
    const std::string what = "copying '" + tensor.name + "' back from the GPU";
    check_cuda(cudaMemcpy(host.packed, device.packed, layout.packed_bytes, cudaMemcpyDeviceToHost), what);
    check_cuda(cudaMemcpy(host.absmax, device.absmax, absmax_bytes(layout), cudaMemcpyDeviceToHost), what);
    if (nested) {
      check_cuda(cudaMemcpy(host.nested_absmax, device.nested_absmax, nested_absmax_bytes(layout),
                            cudaMemcpyDeviceToHost),
                 what);
      check_cuda(
          cudaMemcpy(host.nested_code, device.nested_code, nested_code_bytes(layout), cudaMemcpyDeviceToHost),
          what);
      check_cuda(cudaMemcpy(host.nested_offset, device.nested_offset, sizeof(float), cudaMemcpyDeviceToHost),
                 what);
    }
    return host_.bytes();
  }

 private:
  moeq_quant_config config_;
  int device_id_;
  DeviceScratch input_, packed_, absmax_, nested_absmax_, nested_code_, nested_offset_;
  HostQTensorBuffers host_;
};

}  // namespace

std::unique_ptr<Quantizer> make_cuda_quantizer(const moeq_quant_config& config) {
  if (moeq_cuda_available() == 0)
    throw safetensors::Error(std::string("--device cuda: no usable GPU (") + moeq_build_info() + ")");
  int device_id = 0;
  check_cuda(cudaGetDevice(&device_id), "--device cuda");
  return std::make_unique<CudaQuantizer>(config, device_id);
}

}  // namespace moeq::cli
