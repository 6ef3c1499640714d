// Tensor Memory Accelerator descriptors (CUtensorMap) for 2-D row-major matrices,
// encoded on the host through the driver entry point the CUDA runtime hands out,
// so the library links no libcuda of its own.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace moeq::cuda {

// Describes a row-major [rows, cols] matrix (row_stride_bytes apart) read in
// [box_rows, box_cols] boxes; elements outside the matrix arrive as zeros.
struct TensorMapShape {
  const void* base;
  CUtensorMapDataType type;
  uint32_t element_bytes;
  uint64_t rows;
  uint64_t cols;
  uint64_t row_stride_bytes;
  uint32_t box_rows;
  uint32_t box_cols;
  CUtensorMapSwizzle swizzle;
};

// Whether the hardware can describe `shape`: 16-byte aligned base and row
// stride, dims below 2^32, the box within the swizzle span.
bool tensor_map_fits(const TensorMapShape& shape);

// Encodes `shape`; a driver refusal is MOEQ_ERR_CUDA naming the shape.
CUtensorMap make_tensor_map(const TensorMapShape& shape);

}  // namespace moeq::cuda
