// One expert of a 4-bit [E, rows, cols] weight, dequantized a tile at a time into
// float32 scratch for BLAS.
#pragma once

#include "core/problems.hpp"

#include <cstdint>

namespace moeq::cpu {

class ExpertWeight {
 public:
  // The weight as stored: [E, N, K] for ExpertOutIn, [E, K, N] for ExpertInOut.
  ExpertWeight(const QuantizedBuffers& quantized, WeightLayout layout,
               const ExpertGemmShape& shape);

  int64_t storage_rows() const { return storage_rows_; }
  int64_t storage_cols() const { return storage_cols_; }

  // out[i * col_count + j] = W_e[row_begin + i, col_begin + j] of the stored matrix,
  // bit-identical to moeq_dequantize to float32. col_begin and col_count are even
  // (a packed byte is never split).
  void dequantize_tile(int64_t expert, int64_t row_begin, int64_t row_count, int64_t col_begin,
                       int64_t col_count, float* out) const;

 private:
  // Values of a packed byte's two codes (high nibble first), before the absmax.
  struct CodePair {
    float first, second;
  };
  void dequantize_run(int64_t flat_begin, int64_t count, float* out) const;

  const QuantizedBuffers& quantized_;
  int64_t storage_rows_, storage_cols_;
  CodePair byte_values_[256];
};

}  // namespace moeq::cpu
