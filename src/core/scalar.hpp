// Scalar types moeq computes with, their DLPack codes, and float <-> 16-bit
// conversions usable on the host and on the device.
#pragma once

#include <dlpack/dlpack.h>

#include <cstdint>
#include <cstring>
#include <string>

#if defined(__CUDACC__)
#define MOEQ_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MOEQ_HOST_DEVICE inline
#endif

namespace moeq {

enum class ScalarType { Float32, Float16, BFloat16 };

// 16-bit floats as their bit patterns, so host code needs no compiler extension
// and kernels can reinterpret them as __half / __nv_bfloat16.
struct Float16Bits { uint16_t bits; };
struct BFloat16Bits { uint16_t bits; };

MOEQ_HOST_DEVICE uint32_t float_to_bits(float value) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(value);
#else
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
#endif
}

MOEQ_HOST_DEVICE float bits_to_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
#endif
}

// Round to nearest even; NaN stays a (quiet) NaN.
MOEQ_HOST_DEVICE uint16_t float_to_bfloat16_bits(float value) {
  uint32_t bits = float_to_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

MOEQ_HOST_DEVICE float bfloat16_bits_to_float(uint16_t bits) {
  return bits_to_float(static_cast<uint32_t>(bits) << 16);
}

// IEEE binary16 with round to nearest even, subnormals and overflow to infinity.
MOEQ_HOST_DEVICE uint16_t float_to_float16_bits(float value) {
  const uint32_t bits = float_to_bits(value);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (magnitude < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    if (magnitude < 0x33000000u) return static_cast<uint16_t>(sign);  // rounds to 0
    const uint32_t exponent = magnitude >> 23;
    const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - exponent;  // 14 .. 24
    uint32_t half = mantissa >> shift;
    const uint32_t remainder = mantissa & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1u);
    if (remainder > halfway || (remainder == halfway && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t rounded = magnitude - 0x38000000u;  // rebias exponent 127 -> 15
  rounded += 0xfffu + ((rounded >> 13) & 1u);
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

MOEQ_HOST_DEVICE float float16_bits_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0x1fu) return bits_to_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return bits_to_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  // Subnormal: mantissa * 2^-24, exact in float32.
  const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
  return sign ? -magnitude : magnitude;
}

MOEQ_HOST_DEVICE float to_float(float value) { return value; }
MOEQ_HOST_DEVICE float to_float(Float16Bits value) { return float16_bits_to_float(value.bits); }
MOEQ_HOST_DEVICE float to_float(BFloat16Bits value) { return bfloat16_bits_to_float(value.bits); }

template <class T>
MOEQ_HOST_DEVICE T from_float(float value);
template <>
MOEQ_HOST_DEVICE float from_float<float>(float value) { return value; }
template <>
MOEQ_HOST_DEVICE Float16Bits from_float<Float16Bits>(float value) {
  return Float16Bits{float_to_float16_bits(value)};
}
template <>
MOEQ_HOST_DEVICE BFloat16Bits from_float<BFloat16Bits>(float value) {
  return BFloat16Bits{float_to_bfloat16_bits(value)};
}

inline const char* scalar_type_name(ScalarType type) {
  switch (type) {
    case ScalarType::Float32: return "float32";
    case ScalarType::Float16: return "float16";
    case ScalarType::BFloat16: return "bfloat16";
  }
  return "?";
}

inline int64_t scalar_type_bytes(ScalarType type) { return type == ScalarType::Float32 ? 4 : 2; }

inline DLDataType to_dl_dtype(ScalarType type) {
  switch (type) {
    case ScalarType::Float32: return DLDataType{kDLFloat, 32, 1};
    case ScalarType::Float16: return DLDataType{kDLFloat, 16, 1};
    case ScalarType::BFloat16: return DLDataType{kDLBfloat, 16, 1};
  }
  return DLDataType{kDLFloat, 32, 1};
}

// "float32", "int64", "uint8x4", ... for error messages.
std::string dtype_name(DLDataType dtype);

// The one place a runtime dtype becomes a C++ type: calls body(T{}) with T one of
// float / Float16Bits / BFloat16Bits.
template <class Body>
decltype(auto) dispatch_scalar(ScalarType type, Body&& body) {
  switch (type) {
    case ScalarType::Float16: return body(Float16Bits{});
    case ScalarType::BFloat16: return body(BFloat16Bits{});
    case ScalarType::Float32: break;
  }
  return body(float{});
}

}  // namespace moeq
