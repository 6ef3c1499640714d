// The one float32 GEMM the CPU backend calls: row-major cblas_sgemm with moeq's
// int64 sizes, plus the check that those sizes fit BLAS's 32-bit ints.
#pragma once

#include "core/error.hpp"
#include "core/problems.hpp"

#include <cblas.h>

#include <climits>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace moeq::cpu {

// A row-major float32 matrix operand; `transposed` means the GEMM reads its transpose.
struct GemmOperand {
  const float* data = nullptr;
  int64_t leading_dim = 0;
  bool transposed = false;
};

// c[m, n] = alpha * a[m, k] * b[k, n] + beta * c. Called from inside OpenMP
// regions, where OpenBLAS (built for OpenMP) runs on the calling thread alone.
inline void sgemm(int64_t m, int64_t n, int64_t k, float alpha, GemmOperand a, GemmOperand b,
                  float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, a.transposed ? CblasTrans : CblasNoTrans,
              b.transposed ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a.data, static_cast<int>(a.leading_dim), b.data,
              static_cast<int>(b.leading_dim), beta, c, static_cast<int>(ldc));
}

struct NamedMatrix {
  const StridedTensor& tensor;
  const char* name;
};

// Every size and row stride the expert GEMM can hand to BLAS must fit its int.
// Checked before any parallel region: a failure inside one could not be reported.
inline void expect_blas_sizes(const ExpertGemmShape& shape,
                              std::initializer_list<NamedMatrix> matrices) {
  const auto expect_int = [](int64_t value, const std::string& what) {
    if (value > INT_MAX)
      fail(MOEQ_ERR_UNSUPPORTED,
           what + ": " + std::to_string(value) + " exceeds the 32-bit sizes of the CPU BLAS");
  };
  expect_int(shape.rows, "M (rows of x)");
  expect_int(shape.in_features, "K (in features)");
  expect_int(shape.out_features, "N (out features)");
  expect_int(shape.rank, "r (LoRA rank)");
  for (const NamedMatrix& matrix : matrices)
    if (matrix.tensor.present())
      expect_int(matrix.tensor.stride[0], std::string(matrix.name) + " row stride");
}

}  // namespace moeq::cpu
