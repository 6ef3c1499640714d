// A host allocation described by a DLTensor, for the command-line tool.
#pragma once

#include <dlpack/dlpack.h>

#include <cstdint>
#include <vector>

namespace moeq::cli {

class HostBuffer {
 public:
  HostBuffer(DLDataType dtype, std::vector<int64_t> shape) : shape_(std::move(shape)) {
    int64_t count = 1;
    for (int64_t size : shape_) count *= size;
    storage_.resize(static_cast<size_t>(count * dtype.bits / 8 + 1));
    tensor_ = DLTensor{storage_.data(), {kDLCPU, 0}, static_cast<int32_t>(shape_.size()), dtype,
                       shape_.data(), nullptr, 0};
  }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  DLTensor* dl() { return &tensor_; }
  template <class T> T* as() { return reinterpret_cast<T*>(storage_.data()); }
  int64_t bytes() const { return static_cast<int64_t>(storage_.size() - 1); }

 private:
  std::vector<int64_t> shape_;
  std::vector<uint8_t> storage_;
  DLTensor tensor_{};
};

}  // namespace moeq::cli
