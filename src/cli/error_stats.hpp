// Error statistics of dequantized values against the original ones, and the
// 4-bit bound every element must meet.
#pragma once

#include "safetensors/dtype.hpp"

#include <cstdint>

namespace moeq::cli {

struct ErrorStats {
  int64_t compared = 0;
  int64_t non_finite = 0;  // NaN/Inf originals and the blocks they sit in: not compared
  double sum_abs_error = 0.0, sum_squared_error = 0.0, sum_squared_original = 0.0;
  double max_abs_error = 0.0;
  // Largest |error| / bound. The bound of an element in a block whose largest
  // magnitude is a, restored with scale a', is half_step * a + |a' - a| (+ float
  // rounding): quantization picks the nearest code to x / a, at most half_step
  // away, and dequantization multiplies it (|code| <= 1) by a'. Above 1 means
  // the 4-bit tensor was not made from this original.
  double worst_bound_ratio = 0.0;

  double mean_abs_error() const;
  double relative_error() const;  // ||error||_2 / ||original||_2
  bool within_bound() const { return worst_bound_ratio <= 1.0; }
};

// Half the largest gap between neighbouring values of a 16-entry code table.
double half_code_step(const float* code_values);

// Adds elements [0, count) of a chunk that starts on a block boundary: the
// original values (dtype `dtype`, aligned), the restored float32 values and one
// restored scale per block.
void accumulate_errors(const void* original, safetensors::Dtype dtype, const float* restored,
                       const float* block_scales, int64_t count, int64_t blocksize, double half_step,
                       ErrorStats& stats);

}  // namespace moeq::cli
