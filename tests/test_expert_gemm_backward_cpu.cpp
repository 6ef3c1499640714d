// The CPU backward of the expert GEMM (grad_x, grad_lora_a, grad_lora_b) against
// a float64 reference and against finite differences of the forward.
#include "support/expert_gemm_backward_case.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <cmath>
#include <random>
#include <vector>

using namespace moeq_test;

namespace {

// One CPU backward of the request over fresh random inputs; its tensors, with the
// gradients asked for written.
BackwardTensors run_backward(ExpertGemmInputs& in, const GradientRequest& request, std::mt19937_64& rng) {
  BackwardTensors run = backward_tensors(in, request, rng);
  const moeq_expert_gemm_grad_args args = request_args(in, run, request, run);
  const moeq_status status = moeq_expert_gemm_lora_backward(&args, nullptr);
  INFO(std::string(moeq_last_error()));
  REQUIRE(status == MOEQ_OK);
  return run;
}

// Every gradient the request asks for within its dtype's tolerance; rows of
// grad_x past the last group_end and its row padding untouched.
void check_backward(const ExpertGemmCase& spec, uint64_t seed, GradientRequest request = {}) {
  CAPTURE(spec.describe());
  CAPTURE(request.grad_x);
  CAPTURE(request.grad_lora_a);
  CAPTURE(request.grad_lora_b);
  CAPTURE(request.pass_x_lora_a);
  if (spec.rank == 0) request.grad_lora_a = request.grad_lora_b = request.pass_x_lora_a = false;
  request.x_lora_a_type = spec.lora;  // a saved x_lora_a in the LoRA dtype
  std::mt19937_64 rng(seed);
  ExpertGemmInputs in(spec, rng);
  BackwardTensors run = run_backward(in, request, rng);
  const ReferenceGradients expected = reference_gradients(in, run, request);
  if (request.grad_x) {
    CHECK(relative_error(run.grad_x, expected.grad_x.value, spec.routed_rows(), spec.in_features) <=
          output_tolerance(spec.activation));
    const PoisonCount untouched = untouched_elements(run.grad_x, spec.routed_rows());
    CHECK(untouched.poisoned == untouched.total);
  }
  if (request.grad_lora_a)
    CHECK(relative_error(dense_values(run.grad_lora_a), expected.grad_lora_a.value) <=
          output_tolerance(spec.lora));
  if (request.grad_lora_b)
    CHECK(relative_error(dense_values(run.grad_lora_b), expected.grad_lora_b.value) <=
          output_tolerance(spec.lora));
}

}  // namespace

TEST_CASE("all three gradients match the float64 reference for each activation dtype") {
  for (DLDataType activation : activation_types())
    for (int32_t layout : {MOEQ_LAYOUT_EXPERT_OUT_IN, MOEQ_LAYOUT_EXPERT_IN_OUT}) {
      ExpertGemmCase spec;
      spec.layout = layout;
      spec.in_features = 128;
      spec.out_features = 128;
      spec.rows_per_expert = {13, 0, 24};
      spec.rank = 6;
      spec.activation = activation;
      spec.lora = activation;
      check_backward(spec, 21);
    }
}

TEST_CASE("grad_x without LoRA matches the reference for both formats, plain and nested") {
  for (const ExpertGemmCase& spec : every_layout_and_format(64, 51, 0)) check_backward(spec, 22);
}

TEST_CASE("each gradient may be asked for alone") {
  ExpertGemmCase spec;
  spec.rows_per_expert = {9, 4, 0, 11};
  spec.rank = 3;
  spec.activation = float16_type();
  for (int which = 0; which < 3; ++which) {
    GradientRequest request;
    request.grad_x = which == 0;
    request.grad_lora_a = which == 1;
    request.grad_lora_b = which == 2;
    check_backward(spec, 23, request);
  }
}

TEST_CASE("grad_x needs neither x nor x_lora_a") {
  ExpertGemmCase spec;
  spec.rows_per_expert = {6, 10};
  spec.rank = 4;
  GradientRequest request;
  request.grad_lora_a = request.grad_lora_b = false;
  request.pass_x = false;
  check_backward(spec, 24, request);
}

TEST_CASE("grad_lora_b uses a saved x_lora_a instead of x when given") {
  for (DLDataType lora : {float32_type(), bfloat16_type()}) {
    ExpertGemmCase spec;
    spec.rows_per_expert = {12, 0, 5};
    spec.rank = 5;
    spec.activation = bfloat16_type();
    spec.lora = lora;
    GradientRequest request;
    request.grad_x = request.grad_lora_a = false;
    request.pass_x = false;
    request.pass_x_lora_a = true;
    check_backward(spec, 25, request);
    // With x given too, the saved projection still wins.
    request.pass_x = true;
    request.grad_x = request.grad_lora_a = true;
    check_backward(spec, 25, request);
  }
}

TEST_CASE("experts without rows get zero LoRA gradients") {
  ExpertGemmCase spec;
  spec.rows_per_expert = {0, 7, 0, 0, 3};
  spec.unrouted_rows = 5;
  spec.rank = 4;
  spec.peft_lora_b = true;
  std::mt19937_64 rng(26);
  ExpertGemmInputs in(spec, rng);
  BackwardTensors run = run_backward(in, GradientRequest{}, rng);
  for (int64_t e : {0, 2, 3}) {
    CAPTURE(e);
    double largest = 0.0;
    for (int64_t j = 0; j < spec.rank; ++j) {
      for (int64_t k = 0; k < spec.in_features; ++k)
        largest = std::max(largest, std::fabs(run.grad_lora_a.at({e, j, k})));
      for (int64_t n = 0; n < spec.out_features; ++n)
        largest = std::max(largest, std::fabs(run.grad_lora_b.at({e, n, j})));
    }
    CHECK(largest == 0.0);  // also fails on a NaN left from the poison
  }
}

TEST_CASE(
    "PEFT's strided lora_B and its gradient work with float32 LoRA and bfloat16 activations") {
  ExpertGemmCase spec;
  spec.rows_per_expert = {10, 3, 8};
  spec.rank = 8;
  spec.activation = bfloat16_type();
  spec.lora = float32_type();
  spec.peft_lora_b = true;
  spec.row_padding = 5;
  spec.group_end_int64 = true;
  check_backward(spec, 27);
}

TEST_CASE(
    "a single expert owning every row and 256 experts with few rows each give the reference "
    "gradients") {
  ExpertGemmCase single;
  single.in_features = 320;  // several column tiles of grad_x, the last one partial
  single.out_features = 96;
  single.rows_per_expert = {560};
  single.rank = 16;
  single.activation = float16_type();
  single.lora = float32_type();
  check_backward(single, 28);

  std::mt19937_64 rng(29);
  ExpertGemmCase many;
  many.layout = MOEQ_LAYOUT_EXPERT_IN_OUT;
  many.in_features = 40;
  many.out_features = 64;
  many.rows_per_expert.assign(256, 0);
  for (int64_t& count : many.rows_per_expert)
    count = std::uniform_int_distribution<int64_t>(0, 3)(rng);
  many.rank = 2;
  check_backward(many, 29);
}

TEST_CASE("work large enough to be shared by every thread gives the reference gradients") {
  // Several row chunks per expert for dY·B_e and x·A_eᵀ, several tiles per gradient.
  ExpertGemmCase spec;
  spec.in_features = 256;
  spec.out_features = 192;
  spec.rows_per_expert = {700, 0, 520, 610};
  spec.rank = 16;
  spec.activation = bfloat16_type();
  spec.lora = float32_type();
  spec.peft_lora_b = true;
  check_backward(spec, 31);
}

TEST_CASE("random problems match the float64 reference") {
  std::mt19937_64 rng(4048);
  for (int trial = 0; trial < 40; ++trial) {
    const ExpertGemmCase spec = random_case(rng);
    GradientRequest request;
    request.pass_x_lora_a = spec.rank > 0 && rng() % 2 == 0;
    check_backward(spec, rng(), request);
  }
}

// The loss L = sum(y * grad_y) is linear in x, in lora_a and in lora_b, so a
// central difference (L(v + h) - L(v - h)) / 2h is exact up to the float32
// rounding of the two forward results: about 1e-7 * |L| / h.
TEST_CASE("the gradients agree with finite differences of the forward on a tiny case") {
  ExpertGemmCase spec;
  spec.blocksize = 32;
  spec.in_features = 32;
  spec.out_features = 10;
  spec.rows_per_expert = {3, 0, 2};
  spec.rank = 2;
  std::mt19937_64 rng(30);
  ExpertGemmInputs in(spec, rng);
  BackwardTensors run = run_backward(in, GradientRequest{}, rng);

  HostTensor y(float32_type(), {spec.rows(), spec.out_features});
  const auto loss = [&] {
    const moeq_expert_gemm_args args = forward_args(in, y.dl());
    REQUIRE(moeq_expert_gemm_lora(&args, nullptr) == MOEQ_OK);
    double sum = 0.0;
    for (int64_t i = 0; i < spec.routed_rows(); ++i)
      for (int64_t n = 0; n < spec.out_features; ++n) sum += y.at({i, n}) * run.grad_y.at({i, n});
    return sum;
  };
  constexpr double kStep = 0.25;
  // Largest |central difference - analytic gradient| relative to the largest gradient.
  const auto check_against = [&](HostTensor& variable, const HostTensor& gradient, int64_t count) {
    double worst = 0.0, scale = 0.0;
    for (int64_t i = 0; i < count; ++i) {
      const double value = variable.flat(i);
      variable.set_flat(i, value + kStep);
      const double up = loss();
      variable.set_flat(i, value - kStep);
      const double down = loss();
      variable.set_flat(i, value);
      const double analytic = gradient.flat(i);
      worst = std::max(worst, std::fabs((up - down) / (2 * kStep) - analytic));
      scale = std::max(scale, std::fabs(analytic));
    }
    return worst / scale;
  };
  CHECK(check_against(in.x, run.grad_x, spec.routed_rows() * spec.in_features) <= 1e-4);
  CHECK(check_against(in.lora_a, run.grad_lora_a, in.lora_a.numel()) <= 1e-4);
  CHECK(check_against(in.lora_b, run.grad_lora_b, in.lora_b.numel()) <= 1e-4);
}
