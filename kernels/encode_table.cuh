// A bucket table that turns a normalized value into its 4-bit code with one
// shared-memory lookup and one comparison instead of core/format.hpp's fifteen
// comparisons (quantization is otherwise bound by that arithmetic, not by memory).
// The table is built on the host from core/format.hpp's encoders, so the codes
// cannot differ from the CPU backend's.
#pragma once

#include "core/format.hpp"

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace moeq::cuda {

// Keys in [-1, 1] (NF4: the value; FP4: its magnitude) fall into buckets of width
// 1/16. Neighbouring NF4 thresholds are >= 0.08 apart and FP4's >= 0.083, so a
// bucket holds at most one threshold: code = key > threshold ? high : low.
constexpr int kEncodeEntries = 33;  // NF4 uses buckets 0..32, FP4 0..16

struct alignas(8) EncodeEntry {
  float threshold;  // +inf when the bucket holds no threshold
  uint32_t codes;   // NF4: low (high is low + 1); FP4: low | high << 16
};

struct EncodeTable {
  EncodeEntry entries[kEncodeEntries];
};

// Adding 1.5 * 2^23 rounds a float in [-2^22, 2^22] to an integer held in the low
// bits of the sum; the bucket is that integer.
constexpr float kBucketRounding = 12582912.0f;

template <Format F>
MOEQ_HOST_DEVICE float encode_key(float normalized) {
  return F == Format::NF4 ? normalized : fabsf(normalized);
}

// Defined for keys in [-1 - 1/32, 1 + 1/32] (NaN and larger keys are not).
template <Format F>
MOEQ_HOST_DEVICE uint32_t encode_bucket(float key) {
  const float offset = F == Format::NF4 ? 16.0f : 0.0f;  // NF4 keys may be negative
  return float_to_bits(fmaf(key, 16.0f, kBucketRounding + offset)) - float_to_bits(kBucketRounding);
}

// The code of a finite `normalized` with |normalized| <= 1 + 2^-22: what
// x * block_scale(absmax) is for finite x when absmax and the scale are finite.
template <Format F>
MOEQ_HOST_DEVICE uint32_t table_encode(const EncodeEntry* table, float normalized) {
  const float key = encode_key<F>(normalized);
  const EncodeEntry entry = table[encode_bucket<F>(key)];
  if (F == Format::NF4) return entry.codes + (key > entry.threshold ? 1u : 0u);
  const uint32_t magnitude = key > entry.threshold ? entry.codes >> 16 : entry.codes & 0xffffu;
  return normalized < 0.0f ? magnitude | 8u : magnitude;
}

// Built once per format (thread-safe) from encode().
const EncodeTable& encode_table(Format format);

// Calls body(std::integral_constant<Format, ...>{}): the one place a runtime
// format becomes a compile-time one.
template <class Body>
decltype(auto) dispatch_format(Format format, Body&& body) {
  if (format == Format::FP4) return body(std::integral_constant<Format, Format::FP4>{});
  return body(std::integral_constant<Format, Format::NF4>{});
}

}  // namespace moeq::cuda
