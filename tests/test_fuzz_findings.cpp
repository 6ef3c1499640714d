// What the fuzzers (tests/fuzz) found, one regression test each: the calls that
// reached undefined behaviour before the fix are refused with an argument error.
// Under the sanitized build (build-asan) they also prove no UB remains on the way.
#include "support/host_tensor.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <random>
#include <string>

using namespace moeq_test;

namespace {

void expect_invalid(moeq_status status, const std::string& message_start) {
  const std::string message = moeq_last_error();
  INFO("message: " << message);
  CHECK(status == MOEQ_ERR_INVALID_ARGUMENT);
  CHECK(message.rfind(message_start, 0) == 0);
}

// A valid forward call (2 experts, N 32, K 64, 4 rows) whose x the cases replace.
struct ForwardCall {
  ForwardCall()
      : weight_input(float32_type(), {2, 32, 64}),
        weight(MOEQ_FORMAT_NF4, 64, false, {2, 32, 64}, float32_type()),
        x(float32_type(), {4, 64}),
        group_end(int32_type(), {2}),
        y(float32_type(), {4, 32}) {
    std::mt19937_64 rng(3);
    weight_input.fill_normal(rng);
    quantize_into(weight_input, weight);
    x.fill_normal(rng);
    group_end.set_flat(0, 1);
    group_end.set_flat(1, 4);
    args.struct_size = sizeof(args);
    args.x = x.dl();
    args.weight = weight.q();
    args.weight_layout = MOEQ_LAYOUT_EXPERT_OUT_IN;
    args.group_end = group_end.dl();
    args.y = y.dl();
  }
  HostTensor weight_input;
  HostQTensor weight;
  HostTensor x, group_end, y;
  moeq_expert_gemm_args args{};
};

}  // namespace

TEST_CASE("a float tensor whose first element is not aligned to its size is refused") {
  // Found by fuzz_c_api: quantize read a float32 input one byte off its alignment.
  HostTensor input(float32_type(), {2, 64});
  HostQTensor out(MOEQ_FORMAT_NF4, 64, false, {2, 64}, float32_type());
  const moeq_quant_config config = out.config();
  input.dl()->byte_offset = 1;
  expect_invalid(moeq_quantize(input.dl(), &config, out.q(), nullptr, 0, nullptr),
                 "input: expected data + byte_offset aligned to 4 bytes");

  HostTensor restored(bfloat16_type(), {2, 64});
  HostTensor source(float32_type(), {2, 64});
  quantize_into(source, out);
  restored.dl()->byte_offset = 3;
  expect_invalid(moeq_dequantize(out.q(), restored.dl(), nullptr),
                 "out: expected data + byte_offset");

  ForwardCall call;
  call.group_end.dl()->byte_offset = 2;
  expect_invalid(moeq_expert_gemm_lora(&call.args, nullptr),
                 "group_end: expected data + byte_offset");
}

TEST_CASE("a matrix whose sizes overflow 64-bit offsets is refused before its strides are read") {
  // Found by fuzz_c_api: x [2^62, 64] with strides made the compact-stride product overflow.
  ForwardCall call;
  int64_t shape[2] = {int64_t{1} << 62, 64};
  int64_t strides[2] = {64, 1};
  call.x.dl()->shape = shape;
  call.x.dl()->strides = strides;
  expect_invalid(moeq_expert_gemm_lora(&call.args, nullptr), "x: element count overflows");
}

TEST_CASE("an empty tensor cannot hide sizes whose product overflows") {
  ForwardCall call;
  int64_t shape[2] = {0, int64_t{1} << 62};
  call.y.dl()->shape = shape;
  call.y.dl()->ndim = 2;
  expect_invalid(moeq_expert_gemm_lora(&call.args, nullptr), "y: element count overflows");
}

TEST_CASE("strides that reach past 2^63 bytes are refused") {
  ForwardCall call;
  int64_t strides[2] = {int64_t{1} << 61, 1};
  call.x.dl()->strides = strides;
  expect_invalid(moeq_expert_gemm_lora(&call.args, nullptr),
                 "x: sizes and strides reach past 2^63 bytes");
}
