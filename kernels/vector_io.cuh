// Eight consecutive float32 / float16 / bfloat16 elements as the quantize and
// dequantize kernels move them: 16-byte accesses (streaming by default) when the
// pointer is aligned and the vector is whole, element-wise guarded accesses otherwise.
#pragma once

#include "core/scalar.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace moeq::cuda {

// Eight elements are four packed bytes: one uint32 of 4-bit codes.
constexpr int kVectorElements = 8;

// Bit position of element j's code in that uint32 (little-endian bytes; element
// 2k is the high nibble of byte k).
__host__ __device__ constexpr int nibble_shift(int j) { return 8 * (j / 2) + ((j % 2) ? 0 : 4); }

// The raw bits of eight elements of T: one uint4 for 16-bit types, two for float.
template <class T>
struct RawVector {
  static constexpr int kWords = static_cast<int>(sizeof(T)) / 2;
  uint4 words[kWords];
};

__host__ __device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

__host__ __device__ __forceinline__ void set_word(uint4& v, int i, uint32_t value) {
  if (i == 0) v.x = value;
  else if (i == 1) v.y = value;
  else if (i == 2) v.z = value;
  else v.w = value;
}

// How a whole-vector access treats the caches. Streaming (evict-first) keeps L2 for
// data read again, such as the nested path's block statistics; Default leaves each
// line to L2's usual policy, so a write-back stream is not evicted ahead of the rest.
enum class CacheHint { Streaming, Default };

template <CacheHint Hint, class Word>
__device__ __forceinline__ Word load_word(const Word* source) {
  if constexpr (Hint == CacheHint::Streaming) return __ldcs(source);
  else return __ldg(source);
}

template <CacheHint Hint, class Word>
__device__ __forceinline__ void store_word(Word* destination, const Word& value) {
  if constexpr (Hint == CacheHint::Streaming) __stcs(destination, value);
  else *destination = value;
}

template <CacheHint Hint = CacheHint::Streaming, class T>
__device__ __forceinline__ RawVector<T> load_vector(const T* source) {
  RawVector<T> raw;
  const uint4* words = reinterpret_cast<const uint4*>(source);
#pragma unroll
  for (int i = 0; i < RawVector<T>::kWords; ++i) raw.words[i] = load_word<Hint>(words + i);
  return raw;
}

template <CacheHint Hint = CacheHint::Streaming, class T>
__device__ __forceinline__ void store_vector(T* destination, const RawVector<T>& raw) {
  uint4* words = reinterpret_cast<uint4*>(destination);
#pragma unroll
  for (int i = 0; i < RawVector<T>::kWords; ++i) store_word<Hint>(words + i, raw.words[i]);
}

// Bits of element i (0..7) of a raw vector, zero-extended.
// float: element i is word i % 4 of uint4 i / 4; 16-bit: half i % 2 of word i / 2.
template <class T>
__host__ __device__ __forceinline__ uint32_t element_bits(const RawVector<T>& raw, int i) {
  if constexpr (sizeof(T) == 4) {
    return word_of(raw.words[i / 4], i % 4);
  } else {
    const uint32_t word = word_of(raw.words[0], i / 2);
    return (i % 2) ? word >> 16 : word & 0xffffu;
  }
}

template <class T>
__host__ __device__ __forceinline__ void set_element_bits(RawVector<T>& raw, int i, uint32_t bits) {
  if constexpr (sizeof(T) == 4) {
    set_word(raw.words[i / 4], i % 4, bits);
  } else {
    const uint32_t word = word_of(raw.words[0], i / 2);
    set_word(raw.words[0], i / 2,
             (i % 2) ? (word & 0xffffu) | (bits << 16) : (word & 0xffff0000u) | bits);
  }
}

// The first `valid` elements (clamped to 0..8) of `source`; the rest read as +0.0.
// The unsigned integer as wide as T.
template <class T>
using ElementBits = std::conditional_t<sizeof(T) == 4, uint32_t, uint16_t>;

template <class T>
__device__ __forceinline__ RawVector<T> load_vector_guarded(const T* source, int64_t valid) {
  RawVector<T> raw{};
  const auto* elements = reinterpret_cast<const ElementBits<T>*>(source);
#pragma unroll
  for (int i = 0; i < kVectorElements; ++i)
    if (i < valid) set_element_bits(raw, i, elements[i]);
  return raw;
}

template <class T>
__device__ __forceinline__ void store_vector_guarded(T* destination, const RawVector<T>& raw,
                                                     int64_t valid) {
  auto* elements = reinterpret_cast<ElementBits<T>*>(destination);
#pragma unroll
  for (int i = 0; i < kVectorElements; ++i)
    if (i < valid) elements[i] = static_cast<ElementBits<T>>(element_bits(raw, i));
}

// Exact widening to float32 (the hardware conversions equal core/scalar.hpp's).
template <class T>
__device__ __forceinline__ float bits_to_float32(uint32_t bits) {
  if constexpr (std::is_same_v<T, float>) return __uint_as_float(bits);
  else if constexpr (std::is_same_v<T, BFloat16Bits>) return __uint_as_float(bits << 16);
  else return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}

// Round to nearest even into T, as core/scalar.hpp does (NaN payloads aside).
template <class T>
__device__ __forceinline__ uint32_t float32_to_bits(float value) {
  if constexpr (std::is_same_v<T, float>) return __float_as_uint(value);
  else if constexpr (std::is_same_v<T, BFloat16Bits>) return __bfloat16_as_ushort(__float2bfloat16_rn(value));
  else return __half_as_ushort(__float2half_rn(value));
}

template <class T>
__device__ __forceinline__ void to_floats(const RawVector<T>& raw, float (&values)[kVectorElements]) {
#pragma unroll
  for (int i = 0; i < kVectorElements; ++i) values[i] = bits_to_float32<T>(element_bits(raw, i));
}

// Pairs convert with one packed instruction on sm_80+.
template <class T>
__device__ __forceinline__ RawVector<T> from_floats(const float (&values)[kVectorElements]) {
  RawVector<T> raw;
#pragma unroll
  for (int pair = 0; pair < kVectorElements / 2; ++pair) {
    const float low = values[2 * pair], high = values[2 * pair + 1];
    if constexpr (std::is_same_v<T, float>) {
      set_element_bits(raw, 2 * pair, __float_as_uint(low));
      set_element_bits(raw, 2 * pair + 1, __float_as_uint(high));
    } else {
      uint32_t word;
      if constexpr (std::is_same_v<T, BFloat16Bits>) {
        const __nv_bfloat162 packed = __floats2bfloat162_rn(low, high);
        word = *reinterpret_cast<const uint32_t*>(&packed);
      } else {
        const __half2 packed = __floats2half2_rn(low, high);
        word = *reinterpret_cast<const uint32_t*>(&packed);
      }
      set_word(raw.words[0], pair, word);
    }
  }
  return raw;
}

inline bool is_aligned(const void* pointer, uintptr_t bytes) {
  return reinterpret_cast<uintptr_t>(pointer) % bytes == 0;
}

}  // namespace moeq::cuda
