// Sizes past 32 bits on the CPU: layouts and argument checks of tensors with more
// than 2^31 elements (no memory needed), the 32-bit limits of the CPU BLAS, and,
// with MOEQ_LARGE_TESTS=1 (about 11 GB of memory), a real quantize and dequantize
// of 2^31 + 4097 elements checked at blocks on both sides of element 2^31.
#include "support/host_tensor.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace moeq_test;

namespace {

constexpr int64_t kLargeCount = (int64_t{1} << 31) + 4097;

bool large_tests_enabled() {
  const char* flag = std::getenv("MOEQ_LARGE_TESTS");
  return flag != nullptr && std::strcmp(flag, "1") == 0;
}

moeq_quant_layout layout_of(const moeq_quant_config& config, std::vector<int64_t> shape) {
  moeq_quant_layout layout{};
  layout.struct_size = sizeof(layout);
  REQUIRE(moeq_quantized_layout(&config, static_cast<int32_t>(shape.size()), shape.data(),
                                &layout) == MOEQ_OK);
  return layout;
}

// A value of element i that needs no memory to recompute: a few distinct magnitudes
// per block, signs mixed, in bfloat16.
uint16_t element_bits(int64_t i) {
  const uint64_t mixed = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
  const float value =
      static_cast<float>(static_cast<int64_t>(mixed >> 40) - (int64_t{1} << 23)) / 4096.0f;
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace

TEST_CASE("layouts of tensors with more than 2^31 elements are exact") {
  const moeq_quant_config nested{sizeof(moeq_quant_config), MOEQ_FORMAT_NF4, 64, 1};
  const moeq_quant_layout flat = layout_of(nested, {kLargeCount});
  CHECK(flat.numel == kLargeCount);
  CHECK(flat.packed_bytes == (kLargeCount + 1) / 2);
  CHECK(flat.absmax_count == (kLargeCount + 63) / 64);
  CHECK(flat.nested_absmax_count == ((kLargeCount + 63) / 64 + 255) / 256);
  // A [E, N, K] weight of 2^34 elements: every count past 32 bits.
  const moeq_quant_config plain{sizeof(moeq_quant_config), MOEQ_FORMAT_FP4, 4096, 0};
  const moeq_quant_layout experts = layout_of(plain, {256, 8192, 8192});
  CHECK(experts.packed_bytes == int64_t{1} << 33);
  CHECK(experts.absmax_count == int64_t{1} << 22);
}

TEST_CASE("buffer checks of a qtensor with more than 2^31 elements name the exact 64-bit counts") {
  HostQTensor small(MOEQ_FORMAT_NF4, 64, false, {128}, float32_type());
  moeq_qtensor q = *small.q();
  q.ndim = 1;
  q.shape[0] = kLargeCount;
  HostTensor out(float32_type(), {128});
  CHECK(moeq_dequantize(&q, out.dl(), nullptr) == MOEQ_ERR_INVALID_ARGUMENT);
  CHECK(std::string(moeq_last_error()) == "q.packed: expected " +
                                              std::to_string((kLargeCount + 1) / 2) +
                                              " elements, got 64 (shape [64])");
}

TEST_CASE("a contiguous tensor whose bytes would reach past 2^63 is refused, whatever its dtype") {
  // 2^45 elements of a 2^19-byte dtype: a count that fits, bytes that do not.
  HostTensor input(float32_type(), {64});
  int64_t shape[1] = {int64_t{1} << 45};
  input.dl()->shape = shape;
  input.dl()->dtype = DLDataType{kDLFloat, 64, 65535};
  HostQTensor out(MOEQ_FORMAT_NF4, 64, false, {64}, float32_type());
  const moeq_quant_config config = out.config();
  CHECK(moeq_quantize(input.dl(), &config, out.q(), nullptr, 0, nullptr) ==
        MOEQ_ERR_INVALID_ARGUMENT);
  CHECK(std::string(moeq_last_error()) ==
        "input: sizes and strides reach past 2^63 bytes, got shape [35184372088832]");
}

TEST_CASE("a LoRA rank past the CPU BLAS's 32-bit sizes is refused before anything is allocated") {
  // Stride-0 factors claim rank 2^31 without memory behind them.
  HostQTensor weight(MOEQ_FORMAT_NF4, 64, false, {1, 16, 64}, float32_type());
  HostTensor weight_input(float32_type(), {1, 16, 64});
  weight_input.bytes().assign(weight_input.bytes().size(), 0);
  quantize_into(weight_input, weight);
  HostTensor x(float32_type(), {2, 64}), y(float32_type(), {2, 16}), group_end(int64_type(), {1});
  group_end.set_flat(0, 2);
  const int64_t rank = int64_t{1} << 31;
  HostTensor lora_a(float32_type(), {1, 1, 64}), lora_b(float32_type(), {1, 16, 1});
  int64_t a_shape[3] = {1, rank, 64}, b_shape[3] = {1, 16, rank}, zero_strides[3] = {0, 0, 0};
  lora_a.dl()->shape = a_shape;
  lora_a.dl()->strides = zero_strides;
  lora_b.dl()->shape = b_shape;
  lora_b.dl()->strides = zero_strides;
  moeq_expert_gemm_args args{};
  args.struct_size = sizeof(args);
  args.x = x.dl();
  args.weight = weight.q();
  args.group_end = group_end.dl();
  args.lora_a = lora_a.dl();
  args.lora_b = lora_b.dl();
  args.lora_scale = 1.0f;
  args.y = y.dl();
  CHECK(moeq_expert_gemm_lora(&args, nullptr) == MOEQ_ERR_UNSUPPORTED);
  CHECK(std::string(moeq_last_error()) ==
        "r (LoRA rank): 2147483648 exceeds the 32-bit sizes of the CPU BLAS");
}

TEST_CASE(
    "quantize and dequantize of 2^31 + 4097 elements match small calls at blocks past 2^31 "
    "(MOEQ_LARGE_TESTS=1)") {
  if (!large_tests_enabled()) {
    MESSAGE("skipped: set MOEQ_LARGE_TESTS=1 (needs about 11 GB of memory)");
    return;
  }
  HostTensor input(bfloat16_type(), {kLargeCount});
  uint16_t* values = input.as<uint16_t>();
  for (int64_t i = 0; i < kLargeCount; ++i) values[i] = element_bits(i);
  HostQTensor large(MOEQ_FORMAT_NF4, 64, false, {kLargeCount}, bfloat16_type());
  quantize_into(input, large);
  HostTensor restored(bfloat16_type(), {kLargeCount});
  REQUIRE(moeq_dequantize(large.q(), restored.dl(), nullptr) == MOEQ_OK);

  const int64_t last_block = (kLargeCount - 1) / 64;
  for (int64_t block :
       {int64_t{0}, (int64_t{1} << 25) - 1, int64_t{1} << 25, (int64_t{1} << 25) + 1, last_block}) {
    INFO("block " << block);
    const int64_t begin = block * 64;
    const int64_t count = std::min<int64_t>(64, kLargeCount - begin);
    HostTensor piece(bfloat16_type(), {count});
    for (int64_t i = 0; i < count; ++i) piece.as<uint16_t>()[i] = element_bits(begin + i);
    HostQTensor small(MOEQ_FORMAT_NF4, 64, false, {count}, bfloat16_type());
    quantize_into(piece, small);
    CHECK(std::memcmp(small.packed.data(), large.packed.as<uint8_t>() + begin / 2,
                      (count + 1) / 2) == 0);
    CHECK(small.absmax.as<float>()[0] == large.absmax.as<float>()[block]);
    HostTensor piece_restored(bfloat16_type(), {count});
    REQUIRE(moeq_dequantize(small.q(), piece_restored.dl(), nullptr) == MOEQ_OK);
    CHECK(std::memcmp(piece_restored.data(), restored.as<uint16_t>() + begin, 2 * count) == 0);
  }
}
