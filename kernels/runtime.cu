// CUDA runtime services of the backend: device count, build description, and
// the memory behind moeq_tensor_empty.
#include "core/backend.hpp"
#include "cuda_check.cuh"

#include <string>

namespace moeq::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

const char* build_info() {
  static const std::string info = "CUDA " + std::to_string(CUDART_VERSION / 1000) + "." +
                                  std::to_string(CUDART_VERSION % 1000 / 10) +
                                  " (static runtime), " MOEQ_CUDA_TARGETS_TEXT;
  return info.c_str();
}

void* allocate(size_t bytes, int device_id) {
  DeviceGuard guard(device_id);
  void* pointer = nullptr;
  check_cuda(cudaMalloc(&pointer, bytes == 0 ? 1 : bytes), "cudaMalloc");
  return pointer;
}

void release(void* pointer, int device_id) {
  if (pointer == nullptr) return;
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(device_id);
  cudaFree(pointer);
  cudaSetDevice(previous);
}

}  // namespace moeq::cuda
