// Conversions between strided tensors of any float dtype and dense float32.
#include "cpu/matrix_slice.hpp"

#include "cpu/parallel.hpp"

namespace moeq::cpu {
namespace {

// Unit-stride columns are the common case (activations, PEFT's lora_A) and the
// one the compiler vectorizes, so they get their own loop.
template <class T>
void gather_typed(const MatrixSlice& from, int64_t rows, int64_t cols, float* to,
                  int64_t to_stride) {
  const T* base = static_cast<const T*>(from.data) + from.offset;
  for (int64_t i = 0; i < rows; ++i) {
    const T* source = base + i * from.row_stride;
    float* target = to + i * to_stride;
    if (from.col_stride == 1) {
      for (int64_t j = 0; j < cols; ++j) target[j] = to_float(source[j]);
    } else {
      for (int64_t j = 0; j < cols; ++j) target[j] = to_float(source[j * from.col_stride]);
    }
  }
}

template <class T>
void scatter_typed(const float* from, int64_t from_stride, int64_t rows, int64_t cols,
                   const MatrixSlice& to) {
  T* base = static_cast<T*>(to.data) + to.offset;
  for (int64_t i = 0; i < rows; ++i) {
    const float* source = from + i * from_stride;
    T* target = base + i * to.row_stride;
    if (to.col_stride == 1) {
      for (int64_t j = 0; j < cols; ++j) target[j] = from_float<T>(source[j]);
    } else {
      for (int64_t j = 0; j < cols; ++j) target[j * to.col_stride] = from_float<T>(source[j]);
    }
  }
}

}  // namespace

void gather_float32(const MatrixSlice& from, int64_t rows, int64_t cols, float* to,
                    int64_t to_stride) {
  dispatch_scalar(from.type,
                  [&](auto tag) { gather_typed<decltype(tag)>(from, rows, cols, to, to_stride); });
}

void scatter_float32(const float* from, int64_t from_stride, int64_t rows, int64_t cols,
                     const MatrixSlice& to) {
  dispatch_scalar(
      to.type, [&](auto tag) { scatter_typed<decltype(tag)>(from, from_stride, rows, cols, to); });
}

Float32Rows::Float32Rows(const StridedTensor& matrix, int64_t rows, int64_t cols) {
  const MatrixSlice slice = row_major(matrix);
  if (const float* borrowed = slice.float32_row_major()) {
    data_ = borrowed;
    stride_ = matrix.stride[0];
    return;
  }
  copy_.resize(static_cast<size_t>(rows * cols));
  float* copy = copy_.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i)
    gather_float32(slice.from(i, 0), 1, cols, copy + i * cols, cols);
  data_ = copy;
  stride_ = cols;
}

Float32Rows::Float32Rows(std::vector<float> dense, int64_t cols)
    : copy_(std::move(dense)), data_(copy_.data()), stride_(cols) {}

}  // namespace moeq::cpu
