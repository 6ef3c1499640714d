// 2-D views into strided tensors of any float dtype, and the conversions between
// them and dense float32 matrices that BLAS can read.
#pragma once

#include "core/problems.hpp"

#include <cstdint>
#include <vector>

namespace moeq::cpu {

// Element (i, j) lives at data + offset + i * row_stride + j * col_stride (elements).
struct MatrixSlice {
  void* data = nullptr;
  ScalarType type = ScalarType::Float32;
  int64_t offset = 0;
  int64_t row_stride = 0;
  int64_t col_stride = 0;

  MatrixSlice from(int64_t row, int64_t col) const {
    MatrixSlice moved = *this;
    moved.offset += row * row_stride + col * col_stride;
    return moved;
  }
  // The slice's first element when it is float32 with unit column stride (BLAS can
  // then read or write it in place), else nullptr.
  float* float32_row_major() const {
    if (type != ScalarType::Float32 || col_stride != 1) return nullptr;
    return static_cast<float*>(data) + offset;
  }
};

// A [rows, cols] matrix with unit column stride (x, y, grad_y, grad_x, x_lora_a).
inline MatrixSlice row_major(const StridedTensor& matrix) {
  return MatrixSlice{matrix.data, matrix.type, 0, matrix.stride[0], 1};
}

// Expert e's matrix of a stack [E, a, b]: as [a, b], or as its transpose [b, a].
inline MatrixSlice expert_matrix(const StridedTensor& stack, int64_t expert, bool transposed) {
  const int64_t a = stack.stride[1], b = stack.stride[2];
  return MatrixSlice{stack.data, stack.type, expert * stack.stride[0], transposed ? b : a,
                     transposed ? a : b};
}

// to[i * to_stride + j] = float(from(i, j)) for a [rows, cols] block.
void gather_float32(const MatrixSlice& from, int64_t rows, int64_t cols, float* to,
                    int64_t to_stride);
// to(i, j) = dtype(from[i * from_stride + j]), rounded to nearest even.
void scatter_float32(const float* from, int64_t from_stride, int64_t rows, int64_t cols,
                     const MatrixSlice& to);

// Rows [0, rows) of a row-major activation as float32 for BLAS: the tensor itself
// when it already is float32, else a copy converted once, in parallel.
class Float32Rows {
 public:
  Float32Rows() = default;
  Float32Rows(const StridedTensor& matrix, int64_t rows, int64_t cols);
  // Takes ownership of a dense [rows, cols] float32 matrix.
  Float32Rows(std::vector<float> dense, int64_t cols);
  // Moves keep a copy's buffer (and so data_) in place; a copy would not.
  Float32Rows(Float32Rows&&) = default;
  Float32Rows& operator=(Float32Rows&&) = default;
  Float32Rows(const Float32Rows&) = delete;
  Float32Rows& operator=(const Float32Rows&) = delete;

  const float* row(int64_t i) const { return data_ + i * stride_; }
  int64_t stride() const { return stride_; }

 private:
  std::vector<float> copy_;
  const float* data_ = nullptr;
  int64_t stride_ = 0;
};

}  // namespace moeq::cpu
