// The 4-bit formats (NF4, FP4) of bitsandbytes: code tables, the value -> code
// decision rules, nibble packing and block geometry. Shared by the CPU backend
// and the CUDA kernels so both produce the same bytes.
#pragma once

#include "core/scalar.hpp"

#include <cstdint>

namespace moeq {

enum class Format : int32_t { NF4 = 1, FP4 = 2 };

// Code -> value, exactly the float32 values bitsandbytes stores as quant_map.
MOEQ_HOST_DEVICE float nf4_code_value(uint32_t code) {
  static constexpr uint32_t kBits[16] = {
      0xbf800000u, 0xbf3239b1u, 0xbf066b30u, 0xbeca32a0u, 0xbe91a24du, 0xbe3d353fu,
      0xbdba7871u, 0x00000000u, 0x3da2faffu, 0x3e24cae3u, 0x3e7c04ddu, 0x3ead033au,
      0x3ee1a4b8u, 0x3f1007abu, 0x3f3913b3u, 0x3f800000u};
  return bits_to_float(kBits[code & 15u]);
}

MOEQ_HOST_DEVICE float fp4_code_value(uint32_t code) {
  static constexpr uint32_t kMagnitudeBits[8] = {0x00000000u, 0x3baaaaabu, 0x3f2aaaabu, 0x3f800000u,
                                          0x3eaaaaabu, 0x3f000000u, 0x3e2aaaabu, 0x3e800000u};
  const float magnitude = bits_to_float(kMagnitudeBits[code & 7u]);
  return (code & 8u) ? -magnitude : magnitude;
}

MOEQ_HOST_DEVICE float code_value(Format format, uint32_t code) {
  return format == Format::NF4 ? nf4_code_value(code) : fp4_code_value(code);
}

// NF4: the number of midpoints `normalized` is strictly greater than (a
// branch-free count, so every lane does the same work on the GPU). NaN -> 7 (+0.0).
MOEQ_HOST_DEVICE uint32_t nf4_encode(float normalized) {
  static constexpr float kMidpoints[15] = {
      -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f,
      -0.33967943489551544f, -0.23460740596055984f, -0.13791173323988914f,
      -0.045525018125772476f, 0.03979014977812767f, 0.1202552504837513f,
      0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
      0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};
  if (!(normalized == normalized)) return 7u;
  uint32_t code = 0;

  for (int i = 0; i < 15; ++i) code += normalized > kMidpoints[i] ? 1u : 0u;
  return code;
}

// FP4: bitsandbytes' decision tree on |v| (strict >), written as a count of the
// magnitude thresholds |v| exceeds (they are increasing, so the count picks the
// same leaf), which is branch-free and vectorizes. Sign bit for v < 0; NaN -> 0.
MOEQ_HOST_DEVICE uint32_t fp4_encode(float normalized) {
  static constexpr float kMagnitudeThresholds[7] = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f,
                                             0.4166667f,  0.583333f,  0.8333333f};
  // The 3-bit magnitude code of each interval, lowest interval in the lowest nibble:
  // 0, 1, 6, 7, 4, 5, 2, 3.
  constexpr uint32_t kCodeOfInterval = 0x32547610u;
  const float magnitude = normalized < 0.0f ? -normalized : normalized;
  uint32_t interval = 0;
  for (int i = 0; i < 7; ++i) interval += magnitude > kMagnitudeThresholds[i] ? 1u : 0u;
  return (normalized < 0.0f ? 8u : 0u) | ((kCodeOfInterval >> (4u * interval)) & 7u);
}

MOEQ_HOST_DEVICE uint32_t encode(Format format, float normalized) {
  return format == Format::NF4 ? nf4_encode(normalized) : fp4_encode(normalized);
}

// The same with the format fixed at compile time, for loops that should vectorize.
template <Format format>
MOEQ_HOST_DEVICE uint32_t encode_as(float normalized) {
  if constexpr (format == Format::NF4) return nf4_encode(normalized);
  else return fp4_encode(normalized);
}

// The scale a block's values are multiplied by before encoding. bitsandbytes
// multiplies by a reciprocal too; ours is correctly rounded on both backends.
// A zero (or NaN-only) block gets scale 0 so every value encodes as +0.0, and an
// infinite absmax gives 0 as well (finite values become 0, infinities NaN -> +0).
MOEQ_HOST_DEVICE float block_scale(float absmax) {
  return (absmax > 0.0f && absmax < 3.402823466e38f) ? 1.0f / absmax : 0.0f;
}

// Packing: flat element 2j -> high nibble of byte j, 2j+1 -> low nibble.
MOEQ_HOST_DEVICE uint8_t pack_pair(uint32_t even_code, uint32_t odd_code) {
  return static_cast<uint8_t>((even_code << 4) | (odd_code & 15u));
}
MOEQ_HOST_DEVICE uint32_t high_code(uint8_t byte) { return byte >> 4; }
MOEQ_HOST_DEVICE uint32_t low_code(uint8_t byte) { return byte & 15u; }

inline int64_t ceil_div(int64_t numerator, int64_t denominator) {
  return (numerator + denominator - 1) / denominator;
}

inline bool is_valid_blocksize(int64_t blocksize) {
  return blocksize >= 32 && blocksize <= 4096 && (blocksize & (blocksize - 1)) == 0;
}

}  // namespace moeq
