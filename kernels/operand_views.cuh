// Device views of the dense tensors the expert GEMM kernels read and write:
// activation rows, strided tensors of a runtime dtype (LoRA factors, rank-r
// intermediates) and strided outputs.
#pragma once

#include "core/problems.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace moeq::cuda {

// A 16-bit or float32 value widened to float32.
__device__ __forceinline__ float to_float32(float value) { return value; }
__device__ __forceinline__ float to_float32(__half value) { return __half2float(value); }
__device__ __forceinline__ float to_float32(__nv_bfloat16 value) { return __bfloat162float(value); }

__device__ __forceinline__ float load_as_float(const void* base, ScalarType type, int64_t offset) {
  switch (type) {
    case ScalarType::Float16:
      return __half2float(__ushort_as_half(__ldg(static_cast<const unsigned short*>(base) + offset)));
    case ScalarType::BFloat16:
      return __bfloat162float(
          __ushort_as_bfloat16(__ldg(static_cast<const unsigned short*>(base) + offset)));
    case ScalarType::Float32: break;
  }
  return __ldg(static_cast<const float*>(base) + offset);
}

// Rows of a row-major [rows, width] activation matrix (x, dY): element (r, c) at r * ld + c.
struct RowsView {
  const void* data;
  int64_t ld;
  int64_t width;
  bool vector_aligned;  // data 16-byte aligned and ld a multiple of a 16-byte vector
};

inline RowsView make_rows_view(const StridedTensor& tensor, int64_t width) {
  const int64_t vector = 16 / scalar_type_bytes(tensor.type);
  return RowsView{tensor.data, tensor.stride[0], width,
                  reinterpret_cast<uintptr_t>(tensor.data) % 16 == 0 && tensor.stride[0] % vector == 0};
}

// A tensor of a runtime dtype read as element (expert, index, depth) =
// data[expert * expert_stride + index * index_stride + depth * depth_stride].
struct StridedView {
  const void* data;
  ScalarType type;
  int64_t expert_stride;
  int64_t index_stride;
  int64_t depth_stride;
};

// An output of a runtime dtype: element (expert, row, col) at
// data[expert * expert_stride + row * row_stride + col * col_stride].
struct OutputView {
  void* data;
  ScalarType type;
  int64_t expert_stride;
  int64_t row_stride;
  int64_t col_stride;

  __device__ __forceinline__ void store(int64_t expert, int64_t row, int64_t col, float value) const {
    const int64_t offset = expert * expert_stride + row * row_stride + col * col_stride;
    switch (type) {
      case ScalarType::Float16:
        static_cast<__half*>(data)[offset] = __float2half_rn(value);
        return;
      case ScalarType::BFloat16:
        static_cast<__nv_bfloat16*>(data)[offset] = __float2bfloat16_rn(value);
        return;
      case ScalarType::Float32: break;
    }
    static_cast<float*>(data)[offset] = value;
  }
};

}  // namespace moeq::cuda
