// The CPU forward of moeq_expert_gemm_lora against a float64 reference.
#include "support/expert_gemm_case.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <random>
#include <vector>

using namespace moeq_test;

namespace {

struct ForwardResult {
  HostTensor y;
  HostTensor x_lora_a;  // empty when not asked for
};

// Runs the forward into poisoned outputs shaped like the case (y padded like x).
ForwardResult run_forward(ExpertGemmInputs& in, bool want_x_lora_a = false) {
  const ExpertGemmCase& c = in.spec;
  ForwardResult result;
  result.y = activation_tensor(c.activation, c.rows(), c.out_features, c.row_padding);
  if (want_x_lora_a) result.x_lora_a = HostTensor(c.lora, {c.rows(), c.rank});
  const moeq_expert_gemm_args args =
      forward_args(in, result.y.dl(), want_x_lora_a ? result.x_lora_a.dl() : nullptr);
  const moeq_status status = moeq_expert_gemm_lora(&args, nullptr);
  INFO(std::string(moeq_last_error()));
  REQUIRE(status == MOEQ_OK);
  return result;
}

// y within the dtype's tolerance of the reference, rows past the last group_end
// and the row padding untouched.
void check_forward(const ExpertGemmCase& spec, uint64_t seed) {
  CAPTURE(spec.describe());
  std::mt19937_64 rng(seed);
  ExpertGemmInputs in(spec, rng);
  ForwardResult result = run_forward(in);
  const double error =
      relative_error(result.y, reference_forward(in).value, spec.routed_rows(), spec.out_features);
  CHECK(error <= output_tolerance(spec.activation));
  const PoisonCount untouched = untouched_elements(result.y, spec.routed_rows());
  CHECK(untouched.poisoned == untouched.total);
}

}  // namespace

TEST_CASE("y matches the float64 reference for each activation dtype, with and without LoRA") {
  for (DLDataType activation : activation_types())
    for (int64_t rank : {0, 8}) {
      ExpertGemmCase spec;
      spec.in_features = 128;
      spec.out_features = 72;
      spec.rows_per_expert = {17, 5, 30};
      spec.rank = rank;
      spec.activation = activation;
      spec.lora = activation;
      check_forward(spec, 1);
    }
}

TEST_CASE("both weight layouts, both formats, plain and nested, give the reference result") {
  // 45: not a multiple of 16, allowed for the dim that is not stored last.
  for (const ExpertGemmCase& spec : every_layout_and_format(96, 45, 4)) check_forward(spec, 2);
}

TEST_CASE("experts without rows are skipped and rows past the last group_end stay untouched") {
  ExpertGemmCase spec;
  spec.rows_per_expert = {0, 12, 0, 0, 7, 0};
  spec.unrouted_rows = 9;
  spec.rank = 3;
  check_forward(spec, 3);
}

TEST_CASE("no routed rows at all leaves y untouched") {
  ExpertGemmCase spec;
  spec.rows_per_expert = {0, 0, 0};
  spec.unrouted_rows = 4;
  spec.rank = 2;
  check_forward(spec, 4);
}

TEST_CASE("a single expert owning every row gives the reference result") {
  ExpertGemmCase spec;
  spec.in_features = 256;
  spec.out_features = 300;       // several column tiles, the last one partial
  spec.rows_per_expert = {600};  // several row chunks
  spec.rank = 16;
  spec.activation = bfloat16_type();
  check_forward(spec, 5);
}

TEST_CASE("work large enough to be shared by every thread gives the reference result") {
  // Several row chunks per expert for the x·Aᵀ projection, several tiles for y.
  ExpertGemmCase spec;
  spec.in_features = 256;
  spec.out_features = 192;
  spec.rows_per_expert = {700, 520, 610};
  spec.rank = 16;
  spec.activation = bfloat16_type();
  spec.lora = float32_type();
  spec.peft_lora_b = true;
  check_forward(spec, 13);
}

TEST_CASE("256 experts with a few rows each, many of them empty, give the reference result") {
  std::mt19937_64 rng(6);
  ExpertGemmCase spec;
  spec.in_features = 64;
  spec.out_features = 40;
  spec.rows_per_expert.assign(256, 0);
  for (int64_t& count : spec.rows_per_expert)
    count = std::uniform_int_distribution<int64_t>(0, 3)(rng) == 0
                ? 0
                : std::uniform_int_distribution<int64_t>(1, 4)(rng);
  spec.rank = 4;
  spec.activation = float16_type();
  check_forward(spec, 6);
}

TEST_CASE("float32 LoRA factors work with bfloat16 activations") {
  ExpertGemmCase spec;
  spec.rows_per_expert = {20, 11};
  spec.rank = 8;
  spec.activation = bfloat16_type();
  spec.lora = float32_type();
  check_forward(spec, 7);
}

TEST_CASE("PEFT's lora_B view with strides (1, r*E, E) is read in place") {
  for (DLDataType lora : {float32_type(), bfloat16_type()}) {
    ExpertGemmCase spec;
    spec.rows_per_expert = {6, 0, 13, 4};
    spec.rank = 5;
    spec.activation = bfloat16_type();
    spec.lora = lora;
    spec.peft_lora_b = true;
    check_forward(spec, 8);
  }
}

TEST_CASE("x and y are read and written through padded row strides") {
  for (DLDataType activation : activation_types()) {
    ExpertGemmCase spec;
    spec.rows_per_expert = {10, 3};
    spec.row_padding = 7;
    spec.rank = 2;
    spec.activation = activation;
    spec.lora = activation;
    check_forward(spec, 9);
  }
}

TEST_CASE("group_end may be int32 or int64") {
  for (bool int64 : {false, true}) {
    ExpertGemmCase spec;
    spec.rows_per_expert = {4, 0, 9};
    spec.unrouted_rows = 2;
    spec.group_end_int64 = int64;
    check_forward(spec, 10);
  }
}

TEST_CASE("x_lora_a receives x_e · A_eᵀ in its own dtype") {
  for (DLDataType lora : {float32_type(), bfloat16_type()}) {
    ExpertGemmCase spec;
    spec.rows_per_expert = {7, 0, 12};
    spec.unrouted_rows = 3;
    spec.rank = 6;
    spec.activation = bfloat16_type();
    spec.lora = lora;
    CAPTURE(spec.describe());
    std::mt19937_64 rng(11);
    ExpertGemmInputs in(spec, rng);
    ForwardResult result = run_forward(in, /*want_x_lora_a=*/true);
    CHECK(relative_error(result.x_lora_a, reference_x_lora_a(in).value, spec.routed_rows(), spec.rank) <=
          output_tolerance(lora));
    const PoisonCount untouched = untouched_elements(result.x_lora_a, spec.routed_rows());
    CHECK(untouched.poisoned == untouched.total);
  }
}

// PEFT's ParamWrapper keeps lora_A.weight [r*E, in] and lora_B.weight [out, r*E]
// and builds delta = einsum("o r e, e r i -> e i o", lora_B.view(out, r, E),
// lora_A.view(E, r, in)) * scaling, added to a parameter it reads as [E, in, out].
TEST_CASE("the result equals x @ (W + s * B @ A)ᵀ with the delta built as PEFT builds it") {
  for (int32_t layout : {MOEQ_LAYOUT_EXPERT_IN_OUT, MOEQ_LAYOUT_EXPERT_OUT_IN}) {
    ExpertGemmCase spec;
    spec.layout = layout;
    spec.in_features = 64;
    spec.out_features = 64;
    spec.rows_per_expert = {5, 9, 0, 7};
    spec.rank = 4;
    spec.lora_scale = 2.0f;
    CAPTURE(spec.describe());
    std::mt19937_64 rng(12);
    ExpertGemmInputs in(spec, rng);
    const int64_t experts = spec.experts(), rank = spec.rank, k_count = spec.in_features,
                  n_count = spec.out_features;

    // PEFT's two parameters, and moeq's zero-copy views of them.
    HostTensor peft_lora_a(float32_type(), {rank * experts, k_count});
    HostTensor peft_lora_b(float32_type(), {n_count, rank * experts});
    peft_lora_a.fill_normal(rng);
    peft_lora_b.fill_normal(rng);
    in.lora_a = peft_lora_a;
    in.lora_a.dl()->ndim = 3;
    int64_t a_shape[3] = {experts, rank, k_count};
    in.lora_a.dl()->shape = a_shape;
    in.lora_b = peft_lora_b;
    int64_t b_shape[3] = {experts, n_count, rank};
    int64_t b_strides[3] = {1, rank * experts, experts};
    in.lora_b.dl()->ndim = 3;
    in.lora_b.dl()->shape = b_shape;
    in.lora_b.dl()->strides = b_strides;

    // delta[e][i][o] = sum_r lora_B[o, r*E + e] * lora_A[e*r + r, i] (the einsum above).
    std::vector<double> delta(static_cast<size_t>(experts * k_count * n_count), 0.0);
    for (int64_t e = 0; e < experts; ++e)
      for (int64_t i = 0; i < k_count; ++i)
        for (int64_t o = 0; o < n_count; ++o) {
          double sum = 0.0;
          for (int64_t j = 0; j < rank; ++j)
            sum += peft_lora_b.at({o, j * experts + e}) * peft_lora_a.at({e * rank + j, i});
          delta[(e * k_count + i) * n_count + o] = sum * spec.lora_scale;
        }
    std::vector<double> expected(static_cast<size_t>(spec.routed_rows() * n_count), 0.0);
    for (int64_t e = 0; e < experts; ++e)
      for (int64_t row = in.begin(e); row < in.begin(e) + spec.rows_per_expert[e]; ++row)
        for (int64_t o = 0; o < n_count; ++o) {
          double sum = 0.0;
          for (int64_t i = 0; i < k_count; ++i)
            sum += in.x_values[row * k_count + i] *
                   (in.w(e, o, i) + delta[(e * k_count + i) * n_count + o]);
          expected[row * n_count + o] = sum;
        }

    ForwardResult result = run_forward(in);
    CHECK(relative_error(result.y, expected, spec.routed_rows(), n_count) <=
          output_tolerance(spec.activation));
  }
}

TEST_CASE("random problems match the float64 reference") {
  std::mt19937_64 rng(2024);
  for (int trial = 0; trial < 60; ++trial) check_forward(random_case(rng), rng());
}
