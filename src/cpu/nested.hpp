// Double quantization of block statistics on the CPU (shared by quantize and dequantize).
#pragma once

#include "core/problems.hpp"

#include <cstdint>

namespace moeq::cpu {

// Quantizes `absmax[count]` into out.absmax_codes / nested_absmax / nested_code /
// nested_offset, in bitsandbytes' way (mean removed, 8-bit dynamic map, blocks of 256).
void quantize_statistics(const float* absmax, const QuantizedBuffers& out);

// absmax of block `block` of a quantized tensor, plain or nested.
inline float block_absmax(const QuantizedBuffers& q, int64_t block) {
  if (!q.nested) return q.absmax[block];
  // Two float32 roundings (multiply, then add), as bitsandbytes computes it.
  const float scaled = q.nested_code[q.absmax_codes[block]] * q.nested_absmax[block / 256];
  return scaled + q.nested_offset[0];
}

}  // namespace moeq::cpu
