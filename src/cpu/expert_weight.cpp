// Dequantizing tiles of one expert's 4-bit weight into float32.
#include "cpu/expert_weight.hpp"

#include "cpu/nested.hpp"

#include <algorithm>

namespace moeq::cpu {

ExpertWeight::ExpertWeight(const QuantizedBuffers& quantized, WeightLayout layout,
                           const ExpertGemmShape& shape)
    : quantized_(quantized),
      storage_rows_(layout == WeightLayout::ExpertOutIn ? shape.out_features : shape.in_features),
      storage_cols_(layout == WeightLayout::ExpertOutIn ? shape.in_features : shape.out_features) {
  // One table lookup per byte instead of two nibble lookups.
  for (uint32_t byte = 0; byte < 256; ++byte)
    byte_values_[byte] = {code_value(quantized.format, high_code(static_cast<uint8_t>(byte))),
                          code_value(quantized.format, low_code(static_cast<uint8_t>(byte)))};
}

void ExpertWeight::dequantize_tile(int64_t expert, int64_t row_begin, int64_t row_count,
                                   int64_t col_begin, int64_t col_count, float* out) const {
  const int64_t first_row = expert * storage_rows_ + row_begin;
  for (int64_t i = 0; i < row_count; ++i)
    dequantize_run((first_row + i) * storage_cols_ + col_begin, col_count, out + i * col_count);
}

// Flat elements [flat_begin, flat_begin + count), which may cross block boundaries.
void ExpertWeight::dequantize_run(int64_t flat_begin, int64_t count, float* out) const {
  const int64_t blocksize = quantized_.blocksize;
  const int64_t flat_end = flat_begin + count;
  for (int64_t flat = flat_begin; flat < flat_end;) {
    const int64_t block = flat / blocksize;
    const int64_t run_end = std::min(flat_end, (block + 1) * blocksize);
    const float absmax = block_absmax(quantized_, block);
    const uint8_t* bytes = quantized_.packed + flat / 2;
    float* target = out + (flat - flat_begin);
    const int64_t byte_count = (run_end - flat) / 2;
    for (int64_t j = 0; j < byte_count; ++j) {
      const CodePair values = byte_values_[bytes[j]];
      target[2 * j] = values.first * absmax;
      target[2 * j + 1] = values.second * absmax;
    }
    flat = run_end;
  }
}

}  // namespace moeq::cpu
