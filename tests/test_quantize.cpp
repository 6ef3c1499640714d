// Quantize / dequantize on the CPU: layouts, error bounds, edge cases, every dtype.
#include "support/host_tensor.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

using namespace moeq_test;

namespace {

struct ErrorStats {
  double mean_absolute = 0.0;
  double mean_relative = 0.0;
};

ErrorStats round_trip_error(int32_t format, int32_t blocksize, bool nested, DLDataType dtype,
                            std::vector<int64_t> shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  HostTensor input(dtype, shape);
  input.fill_normal(rng);
  HostQTensor q(format, blocksize, nested, shape, dtype);
  quantize_into(input, q);
  HostTensor output(float32_type(), shape);
  REQUIRE(moeq_dequantize(q.q(), output.dl(), nullptr) == MOEQ_OK);
  ErrorStats stats;
  for (int64_t i = 0; i < input.numel(); ++i) {
    const double error = std::fabs(input.flat(i) - output.flat(i));
    stats.mean_absolute += error;
    stats.mean_relative += error / (std::fabs(input.flat(i)) + 1e-8);
  }
  stats.mean_absolute /= static_cast<double>(input.numel());
  stats.mean_relative /= static_cast<double>(input.numel());
  return stats;
}

}  // namespace

TEST_CASE("moeq_quantized_layout gives the bitsandbytes buffer sizes") {
  moeq_quant_config config{sizeof(moeq_quant_config), MOEQ_FORMAT_NF4, 64, 1};
  moeq_quant_layout layout{};
  layout.struct_size = sizeof(layout);
  const int64_t shape[3] = {128, 1536, 2048};
  REQUIRE(moeq_quantized_layout(&config, 3, shape, &layout) == MOEQ_OK);
  CHECK(layout.numel == 128LL * 1536 * 2048);
  CHECK(layout.packed_bytes == layout.numel / 2);
  CHECK(layout.absmax_count == layout.numel / 64);
  CHECK(layout.absmax_dtype.code == kDLUInt);
  CHECK(layout.absmax_dtype.bits == 8);
  CHECK(layout.nested_absmax_count == (layout.absmax_count + 255) / 256);
  CHECK(layout.nested_code_count == 256);
  CHECK(layout.nested_offset_count == 1);

  const int64_t odd[2] = {7, 63};  // 441 elements: a partial block and an odd tail
  config.nested = 0;
  REQUIRE(moeq_quantized_layout(&config, 2, odd, &layout) == MOEQ_OK);
  CHECK(layout.packed_bytes == 221);
  CHECK(layout.absmax_count == 7);
  CHECK(layout.absmax_dtype.code == kDLFloat);
  CHECK(layout.nested_absmax_count == 0);
}

TEST_CASE("NF4 and FP4 errors stay within bitsandbytes' own bounds (randn 1024x1024)") {
  // bitsandbytes' test_4bit_quant: mean errors of its CUDA kernels plus its tolerance.
  struct Bound { int32_t format; int32_t blocksize; double error; double relative; };
  const Bound bounds[] = {{MOEQ_FORMAT_NF4, 64, 0.0733, 0.2057},
                          {MOEQ_FORMAT_NF4, 128, 0.076835 + 1.2e-3, 0.215252 + 2.8e-3},
                          {MOEQ_FORMAT_FP4, 64, 0.096545 + 1.2e-3, 0.260130 + 2.8e-3},
                          {MOEQ_FORMAT_FP4, 128, 0.102947 + 1.2e-3, 0.275734 + 2.8e-3}};
  for (const Bound& bound : bounds) {
    CAPTURE(bound.format);
    CAPTURE(bound.blocksize);
    const ErrorStats stats = round_trip_error(bound.format, bound.blocksize, false, float32_type(), {1024, 1024}, 7);
    CHECK(stats.mean_absolute < bound.error);
    CHECK(stats.mean_relative < bound.relative);
    // ... and not suspiciously small: a broken round trip that returns the input
    // cannot pass for 4 bits.
    CHECK(stats.mean_absolute > 0.5 * bound.error);
  }
}

TEST_CASE("nested statistics cost little accuracy and reconstruct absmax by code * scale + offset") {
  const ErrorStats plain = round_trip_error(MOEQ_FORMAT_NF4, 64, false, bfloat16_type(), {64, 4096}, 3);
  const ErrorStats nested = round_trip_error(MOEQ_FORMAT_NF4, 64, true, bfloat16_type(), {64, 4096}, 3);
  CHECK(nested.mean_absolute < plain.mean_absolute * 1.02);

  std::mt19937_64 rng(11);
  HostTensor input(float32_type(), {3, 1000});
  input.fill_normal(rng);
  HostQTensor q(MOEQ_FORMAT_NF4, 32, true, {3, 1000}, float32_type());
  quantize_into(input, q);
  const int64_t blocks = (3000 + 31) / 32;
  double offset_sum = 0.0;
  for (int64_t b = 0; b < blocks; ++b) {
    double block_max = 0.0;
    for (int64_t i = b * 32; i < std::min<int64_t>(3000, (b + 1) * 32); ++i)
      block_max = std::max(block_max, std::fabs(input.flat(i)));
    offset_sum += block_max;
    const double reconstructed = q.nested_code.flat(static_cast<int64_t>(q.absmax.flat(b))) *
                                     q.nested_absmax.flat(b / 256) + q.nested_offset.flat(0);
    // One 8-bit step of the dynamic map near its densest region is well under 2%.
    CHECK(std::fabs(reconstructed - block_max) <= 0.02 * block_max + 1e-3);
  }
  CHECK(q.nested_offset.flat(0) == doctest::Approx(offset_sum / static_cast<double>(blocks)).epsilon(1e-6));
}

TEST_CASE("every blocksize, dtype and an odd, partial-block shape round trip within 4-bit error") {
  for (int32_t blocksize = 32; blocksize <= 4096; blocksize *= 2)
    for (DLDataType dtype : {float32_type(), float16_type(), bfloat16_type()})
      for (int32_t format : {MOEQ_FORMAT_NF4, MOEQ_FORMAT_FP4})
        for (bool nested : {false, true}) {
          CAPTURE(blocksize);
          CAPTURE(format);
          CAPTURE(nested);
          CAPTURE(static_cast<int>(dtype.code));
          const ErrorStats stats = round_trip_error(format, blocksize, nested, dtype, {5, 1001}, 42);
          CHECK(stats.mean_absolute < 0.2);
          CHECK(stats.mean_absolute > 0.01);
        }
}

TEST_CASE("dequantize writes every element of every output dtype from the same codes") {
  std::mt19937_64 rng(5);
  HostTensor input(bfloat16_type(), {2, 3, 67});
  input.fill_normal(rng);
  HostQTensor q(MOEQ_FORMAT_FP4, 64, false, {2, 3, 67}, bfloat16_type());
  quantize_into(input, q);
  HostTensor as_f32(float32_type(), {2, 3, 67}), as_f16(float16_type(), {2, 3, 67}),
      as_bf16(bfloat16_type(), {2, 3, 67});
  REQUIRE(moeq_dequantize(q.q(), as_f32.dl(), nullptr) == MOEQ_OK);
  REQUIRE(moeq_dequantize(q.q(), as_f16.dl(), nullptr) == MOEQ_OK);
  REQUIRE(moeq_dequantize(q.q(), as_bf16.dl(), nullptr) == MOEQ_OK);
  for (int64_t i = 0; i < as_f32.numel(); ++i) {
    REQUIRE(std::isfinite(as_f32.flat(i)));
    // The 16-bit outputs are the float32 values rounded once.
    CHECK(as_f16.flat(i) == doctest::Approx(as_f32.flat(i)).epsilon(1e-3).scale(1e-4));
    CHECK(as_bf16.flat(i) == doctest::Approx(as_f32.flat(i)).epsilon(8e-3).scale(1e-4));
  }
}

TEST_CASE("edge cases: zero blocks give +0.0, NaN gives +0.0, infinity saturates its block") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (int32_t format : {MOEQ_FORMAT_NF4, MOEQ_FORMAT_FP4}) {
    CAPTURE(format);
    HostTensor input(float32_type(), {4, 32});
    for (int64_t i = 0; i < 128; ++i) input.set_flat(i, 0.0);            // block 0: zeros
    for (int64_t i = 32; i < 64; ++i) input.set_flat(i, 0.25 * (i - 40)); // block 1: one NaN
    input.set_flat(33, nan);
    for (int64_t i = 64; i < 96; ++i) input.set_flat(i, 1.0);             // block 2: one +inf
    input.set_flat(70, inf);
    for (int64_t i = 96; i < 128; ++i) input.set_flat(i, nan);            // block 3: only NaN
    HostQTensor q(format, 32, false, {4, 32}, float32_type());
    quantize_into(input, q);
    CHECK(q.absmax.flat(0) == 0.0);
    CHECK(q.absmax.flat(1) == 5.75);  // NaN stays out of absmax
    CHECK(std::isinf(q.absmax.flat(2)));
    CHECK(q.absmax.flat(3) == 0.0);
    HostTensor output(float32_type(), {4, 32});
    REQUIRE(moeq_dequantize(q.q(), output.dl(), nullptr) == MOEQ_OK);
    for (int64_t i = 0; i < 32; ++i) {
      CHECK(output.flat(i) == 0.0);
      CHECK(!std::signbit(output.flat(i)));
    }
    CHECK(output.flat(33) == 0.0);
    CHECK(output.flat(34) == doctest::Approx(-1.5).epsilon(0.1));
    for (int64_t i = 96; i < 128; ++i) CHECK(output.flat(i) == 0.0);
  }
}

TEST_CASE("empty and one-element tensors are valid") {
  HostTensor empty(float32_type(), {0, 64});
  HostQTensor q_empty(MOEQ_FORMAT_NF4, 64, true, {0, 64}, float32_type());
  quantize_into(empty, q_empty);
  HostTensor one(float16_type(), {1});
  one.set_flat(0, -3.0);
  HostQTensor q_one(MOEQ_FORMAT_NF4, 64, false, {1}, float16_type());
  quantize_into(one, q_one);
  CHECK(q_one.packed.flat(0) == 0x07);  // code 0 (-1.0) high, the missing element's +0.0 low
  HostTensor back(float32_type(), {1});
  REQUIRE(moeq_dequantize(q_one.q(), back.dl(), nullptr) == MOEQ_OK);
  CHECK(back.flat(0) == -3.0);
}

TEST_CASE("quantization is deterministic and independent of the thread count") {
  std::mt19937_64 rng(9);
  HostTensor input(bfloat16_type(), {37, 777});
  input.fill_normal(rng);
  HostQTensor first(MOEQ_FORMAT_NF4, 64, true, {37, 777}, bfloat16_type());
  HostQTensor second(MOEQ_FORMAT_NF4, 64, true, {37, 777}, bfloat16_type());
  quantize_into(input, first);
  quantize_into(input, second);
  CHECK(first.packed.bytes() == second.packed.bytes());
  CHECK(first.absmax.bytes() == second.absmax.bytes());
  CHECK(first.nested_absmax.bytes() == second.nested_absmax.bytes());
  CHECK(first.nested_offset.bytes() == second.nested_offset.bytes());
}

TEST_CASE("float16 conversion matches IEEE round-to-nearest-even at the edges") {
  HostTensor input(float32_type(), {8});
  const float values[8] = {65504.0f, 65519.99f, 65520.0f, 5.9604645e-08f, 2.9802322e-08f,
                           2.9802326e-08f, 6.1035156e-05f, -1.0009766f};
  for (int i = 0; i < 8; ++i) input.set_flat(i, values[i]);
  HostTensor half(float16_type(), {8});
  for (int i = 0; i < 8; ++i) half.set_flat(i, values[i]);
  CHECK(half.flat(0) == 65504.0);
  CHECK(half.flat(1) == 65504.0);
  CHECK(std::isinf(half.flat(2)));
  CHECK(half.flat(3) == 5.9604644775390625e-08);
  CHECK(half.flat(4) == 0.0);                      // exactly half the smallest subnormal: ties to even
  CHECK(half.flat(5) == 5.9604644775390625e-08);   // just above half: rounds up
  CHECK(half.flat(6) == 6.103515625e-05);
  CHECK(half.flat(7) == -1.0009765625);
}
