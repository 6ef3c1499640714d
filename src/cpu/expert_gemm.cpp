// CPU forward of the expert GEMM with LoRA: y_e = x_e · W_eᵀ + s · (x_e · A_eᵀ) · B_eᵀ.
#include "core/backend.hpp"
#include "cpu/blas.hpp"
#include "cpu/expert_product.hpp"
#include "cpu/lora.hpp"

namespace moeq::cpu {

void expert_gemm(const ExpertGemmProblem& problem) {
  const ExpertGemmCommon& common = problem.common;
  const ExpertGemmShape& shape = common.shape;
  expect_blas_sizes(shape, {{common.x, "x"}, {problem.y, "y"}, {problem.x_lora_a, "x_lora_a"}});
  const ExpertRows rows(common);
  const ExpertWeight weight(common.weight, common.layout, shape);
  const Float32Rows x(common.x, rows.routed(), shape.in_features);

  ExpertProduct product(x, shape.in_features, row_major(problem.y), shape.out_features,
                        common.layout == WeightLayout::ExpertOutIn);

  Float32Rows x_lora_a;
  if (shape.rank > 0) {
    x_lora_a = rank_projection(x, shape.in_features, rows, shape.rank, common.lora_a,
                               /*transposed=*/true);
    if (problem.x_lora_a.present())
      scatter_float32(x_lora_a.row(0), x_lora_a.stride(), rows.routed(), shape.rank,
                      row_major(problem.x_lora_a));
    product.add_lora(x_lora_a, shape.rank, common.lora_b, /*transposed=*/true, common.lora_scale);
  }
  run_expert_product(product, weight, rows);
}

}  // namespace moeq::cpu
