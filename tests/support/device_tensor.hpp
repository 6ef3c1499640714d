// A device copy of a host tensor for the GPU suites: same shape, strides and bytes
// (poison included), uploaded and downloaded whole.
#pragma once

#include "support/host_tensor.hpp"

#include <doctest/doctest.h>

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#define REQUIRE_CUDA(call) REQUIRE_MESSAGE((call) == cudaSuccess, #call)

namespace moeq_test {

// A device copy of a host tensor (same shape, strides and bytes, poison included).
class DeviceTensor {
 public:
  DeviceTensor() = default;
  explicit DeviceTensor(HostTensor& host) { assign(host); }
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;
  ~DeviceTensor() {
    if (data_ != nullptr) cudaFree(data_);
  }

  void assign(HostTensor& host) {
    if (data_ != nullptr) cudaFree(data_);
    bytes_ = host.bytes().size();
    REQUIRE_CUDA(cudaMalloc(&data_, bytes_));
    shape_ = host.shape();
    strides_.clear();
    if (host.dl()->strides != nullptr)
      strides_.assign(host.dl()->strides, host.dl()->strides + host.dl()->ndim);
    rebind(*host.dl());
    upload(host);
  }
  void upload(HostTensor& host) {
    REQUIRE_CUDA(cudaMemcpy(data_, host.bytes().data(), bytes_, cudaMemcpyHostToDevice));
    // A copy from pageable memory may return before it lands; calls on non-blocking
    // streams do not wait for the legacy stream, so wait here (poison then launch).
    REQUIRE_CUDA(cudaStreamSynchronize(cudaStreamLegacy));
  }
  void download(HostTensor& host) const {
    REQUIRE_CUDA(cudaMemcpy(host.bytes().data(), data_, bytes_, cudaMemcpyDeviceToHost));
  }
  DLTensor* dl() { return data_ != nullptr ? &dl_ : nullptr; }
  size_t bytes() const { return bytes_; }

 private:
  void rebind(const DLTensor& like) {
    dl_ = like;
    dl_.data = data_;
    dl_.device = DLDevice{kDLCUDA, 0};
    dl_.shape = shape_.data();
    dl_.strides = strides_.empty() ? nullptr : strides_.data();
    dl_.byte_offset = 0;
  }
  void* data_ = nullptr;
  size_t bytes_ = 0;
  std::vector<int64_t> shape_, strides_;
  DLTensor dl_{};
};

}  // namespace moeq_test
