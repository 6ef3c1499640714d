// Host construction of the bucket tables of encode_table.cuh from core/format.hpp's
// encoders: each bucket's key range is found by bisection over the ordered floats,
// and its threshold as the last key that still encodes to the bucket's low code.
#include "encode_table.cuh"

#include "core/error.hpp"

#include <limits>

namespace moeq::cuda {
namespace {

// Floats in increasing order as integers (both zeros map to 0).
int64_t ordered(float value) {
  const uint32_t bits = float_to_bits(value);
  return (bits & 0x80000000u) ? -static_cast<int64_t>(bits & 0x7fffffffu) : bits;
}

float from_ordered(int64_t index) {
  return index < 0 ? bits_to_float(static_cast<uint32_t>(-index) | 0x80000000u)
                   : bits_to_float(static_cast<uint32_t>(index));
}

// The last key in [low, high] (ordered indices) for which `holds` is true, given
// that it holds at `low` and is monotone (true, then false) over the range.
template <class Predicate>
int64_t last_true(int64_t low, int64_t high, Predicate holds) {
  while (low < high) {
    const int64_t middle = low + (high - low + 1) / 2;
    if (holds(from_ordered(middle))) low = middle;
    else high = middle - 1;
  }
  return low;
}

template <Format F>
EncodeTable build() {
  // The table's domain (a little wider than what the kernels meet): NF4 values
  // and FP4 magnitudes up to 1 + 1/64 in size.
  constexpr float kLimit = 1.0f + 1.0f / 64.0f;
  const int64_t first_key = ordered(F == Format::NF4 ? -kLimit : 0.0f);
  const int64_t last_key = ordered(kLimit);
  const uint32_t buckets = encode_bucket<F>(kLimit);
  if (buckets >= kEncodeEntries) fail(MOEQ_ERR_INTERNAL, "encode table: too many buckets");
  EncodeTable table{};
  int64_t bucket_begin = first_key;
  for (uint32_t bucket = 0; bucket <= buckets; ++bucket) {
    const int64_t bucket_end = last_true(bucket_begin, last_key, [&](float key) {
      return encode_bucket<F>(key) <= bucket;
    });
    const uint32_t low = encode(F, from_ordered(bucket_begin));
    const uint32_t high = encode(F, from_ordered(bucket_end));
    float threshold = std::numeric_limits<float>::infinity();
    if (low != high)
      threshold = from_ordered(last_true(bucket_begin, bucket_end, [&](float key) {
        return encode(F, key) == low;
      }));
    // NF4 codes count the thresholds below the value, so high is low + 1.
    if (F == Format::NF4 && low != high && high != low + 1)
      fail(MOEQ_ERR_INTERNAL, "encode table: an NF4 bucket holds two thresholds");
    table.entries[bucket] = EncodeEntry{threshold, F == Format::NF4 ? low : low | high << 16};
    bucket_begin = bucket_end + 1;
  }
  return table;
}

}  // namespace

const EncodeTable& encode_table(Format format) {
  static const EncodeTable nf4 = build<Format::NF4>();
  static const EncodeTable fp4 = build<Format::FP4>();
  return format == Format::NF4 ? nf4 : fp4;
}

}  // namespace moeq::cuda
