// Turning CUDA runtime errors into moeq errors, and a guard that makes a tensor's
// device current for the length of a call.
#pragma once

#include "core/error.hpp"

#include <cuda_runtime.h>

#include <string>

namespace moeq::cuda {

inline void check_cuda(cudaError_t result, const char* what) {
  if (result == cudaSuccess) return;
  const moeq_status status =
      result == cudaErrorMemoryAllocation ? MOEQ_ERR_OUT_OF_MEMORY : MOEQ_ERR_CUDA;
  cudaGetLastError();  // clear the sticky-free error so later calls start clean
  fail(status, std::string(what) + ": " + cudaGetErrorName(result) + " (" +
                   cudaGetErrorString(result) + ")");
}

// Checks the launch that just happened (configuration errors surface here).
inline void check_launch(const char* kernel_name) { check_cuda(cudaGetLastError(), kernel_name); }

class DeviceGuard {
 public:
  explicit DeviceGuard(int device_id) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device_id) check_cuda(cudaSetDevice(device_id), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

inline cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// Scratch from the stream-ordered allocator, released on the same stream when the
// scope ends: no host synchronisation, and capturable in a CUDA graph.
class StreamScratch {
 public:
  explicit StreamScratch(cudaStream_t stream) : stream_(stream) {}
  ~StreamScratch() {
    if (pointer_ != nullptr) cudaFreeAsync(pointer_, stream_);
  }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;

  void* allocate(size_t bytes) {
    check_cuda(cudaMallocAsync(&pointer_, bytes, stream_), "cudaMallocAsync");
    return pointer_;
  }

 private:
  cudaStream_t stream_;
  void* pointer_ = nullptr;
};

}  // namespace moeq::cuda
