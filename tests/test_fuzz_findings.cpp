// What the fuzzers (tests/fuzz) found, one regression test each: the calls that
// reached undefined behaviour before the fix are refused with an argument error.
// Under the sanitized build (build-asan) they also prove no UB remains on the way.
#include "support/expect_error.hpp"
#include "support/expert_gemm_case.hpp"
#include "support/host_tensor.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <random>
#include <string>

using namespace moeq_test;

namespace {

void expect_invalid(moeq_status status, const std::string& message_start) {
  expect_error(status, MOEQ_ERR_INVALID_ARGUMENT, message_start);
}

// A valid forward call (2 experts, N 32, K 64, 4 rows, int32 group_end) whose
// tensors the cases replace.
ExpertGemmCase forward_case() {
  ExpertGemmCase spec;
  spec.out_features = 32;
  spec.rows_per_expert = {1, 3};
  return spec;
}

struct ForwardCall {
  std::mt19937_64 rng{3};
  ExpertGemmInputs in{forward_case(), rng};
  HostTensor& x = in.x;
  HostTensor& group_end = in.group_end;
  HostTensor y{float32_type(), {4, 32}};
  moeq_expert_gemm_args args = forward_args(in, y.dl());
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

TEST_CASE("SwiGLU over no columns with NULL data and padded rows forms no row pointer") {
  // fuzz_c_api: gate_up [3, 0] and out [3, 0] with data NULL and row strides 5 made the
  // CPU backend offset the NULL pointer row by row.
  int64_t gate_up_shape[2] = {3, 0}, out_shape[2] = {3, 0}, strides[2] = {5, 1};
  DLTensor gate_up{nullptr, {kDLCPU, 0}, 2, float32_type(), gate_up_shape, strides, 0};
  DLTensor out{nullptr, {kDLCPU, 0}, 2, float32_type(), out_shape, strides, 0};
  CHECK(moeq_swiglu(nullptr, &gate_up, &out, nullptr) == MOEQ_OK);
  DLTensor grad_gate_up = gate_up;
  CHECK(moeq_swiglu_backward(nullptr, &gate_up, &out, &grad_gate_up, nullptr) == MOEQ_OK);
}
