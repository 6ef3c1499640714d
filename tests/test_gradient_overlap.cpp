// LoRA gradients are written through their strides, so strides that let two
// elements share memory (threads would race on them) are refused; PEFT's strided
// lora_B layout, whose elements are all apart, is taken.
#include "support/expert_gemm_case.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <random>
#include <string>

using namespace moeq_test;

namespace {

ExpertGemmCase small_lora_case() {
  ExpertGemmCase spec;
  spec.in_features = 64;
  spec.out_features = 16;
  spec.rank = 4;
  spec.rows_per_expert = {3, 5};
  spec.peft_lora_b = true;
  return spec;
}

}  // namespace

TEST_CASE("a LoRA gradient whose strides let two elements share memory is refused") {
  std::mt19937_64 rng(5);
  ExpertGemmInputs in(small_lora_case(), rng);
  const ExpertGemmCase& c = in.spec;
  HostTensor grad_y(float32_type(), {c.rows(), c.out_features});
  grad_y.fill_normal(rng);
  // [E, r, K] with the expert stride 0: both experts' gradients in one place.
  HostTensor shared_a(float32_type(), {c.experts(), c.rank, c.in_features}, {0, c.in_features, 1});
  moeq_expert_gemm_grad_args args = backward_args(in, grad_y.dl(), nullptr, shared_a.dl(), nullptr);
  CHECK(moeq_expert_gemm_lora_backward(&args, nullptr) == MOEQ_ERR_INVALID_ARGUMENT);
  CHECK(std::string(moeq_last_error()) ==
        "grad_lora_a: expected strides that give every element memory of its own, got (0, 64, 1) "
        "for shape [2, 4, 64]");
  // [E, N, r] whose rank columns overlap the next row's.
  HostTensor folded_b(float32_type(), {c.experts(), c.out_features, c.rank},
                      {c.out_features * c.rank, 2, 1});
  args = backward_args(in, grad_y.dl(), nullptr, nullptr, folded_b.dl());
  CHECK(moeq_expert_gemm_lora_backward(&args, nullptr) == MOEQ_ERR_INVALID_ARGUMENT);
  CHECK(std::string(moeq_last_error())
            .rfind("grad_lora_b: expected strides that give every element", 0) == 0);
}

TEST_CASE("PEFT's strided lora_B layout is a valid LoRA gradient") {
  std::mt19937_64 rng(6);
  ExpertGemmInputs in(small_lora_case(), rng);
  const ExpertGemmCase& c = in.spec;
  HostTensor grad_y(float32_type(), {c.rows(), c.out_features});
  grad_y.fill_normal(rng);
  HostTensor grad_b = lora_b_tensor(float32_type(), c.experts(), c.out_features, c.rank, true);
  const moeq_expert_gemm_grad_args args =
      backward_args(in, grad_y.dl(), nullptr, nullptr, grad_b.dl());
  const moeq_status status = moeq_expert_gemm_lora_backward(&args, nullptr);
  INFO(std::string(moeq_last_error()));
  CHECK(status == MOEQ_OK);
}
