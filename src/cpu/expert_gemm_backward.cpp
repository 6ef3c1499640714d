// CPU backward of the expert GEMM with LoRA, for every expert e:
//   grad_x_e = dY_e · W_e + s · (dY_e · B_e) · A_e
//   grad_A_e = s · (dY_e · B_e)ᵀ · x_e,   grad_B_e = s · dY_eᵀ · (x_e · A_eᵀ)
#include "core/backend.hpp"
#include "cpu/blas.hpp"
#include "cpu/expert_product.hpp"
#include "cpu/lora.hpp"

namespace moeq::cpu {

void expert_gemm_backward(const ExpertGemmGradProblem& problem) {
  const ExpertGemmCommon& common = problem.common;
  const ExpertGemmShape& shape = common.shape;
  expect_blas_sizes(shape, {{common.x, "x"},
                            {problem.grad_y, "grad_y"},
                            {problem.x_lora_a, "x_lora_a"},
                            {problem.grad_x, "grad_x"}});
  const ExpertRows rows(common);
  const ExpertWeight weight(common.weight, common.layout, shape);
  const bool lora = shape.rank > 0;
  const Float32Rows grad_y(problem.grad_y, rows.routed(), shape.out_features);
  const bool needs_x = problem.grad_lora_a.present() ||
                       (problem.grad_lora_b.present() && !problem.x_lora_a.present());
  const Float32Rows x =
      needs_x ? Float32Rows(common.x, rows.routed(), shape.in_features) : Float32Rows();

  Float32Rows grad_y_lora_b;  // dY_e · B_e, feeds grad_x and grad_lora_a
  if (lora && (problem.grad_x.present() || problem.grad_lora_a.present()))
    grad_y_lora_b = rank_projection(grad_y, shape.out_features, rows, shape.rank, common.lora_b,
                                    /*transposed=*/false);

  if (problem.grad_x.present()) {
    ExpertProduct product(grad_y, shape.out_features, row_major(problem.grad_x), shape.in_features,
                          common.layout == WeightLayout::ExpertInOut);
    if (lora)
      product.add_lora(grad_y_lora_b, shape.rank, common.lora_a, /*transposed=*/false,
                       common.lora_scale);
    run_expert_product(product, weight, rows);
  }
  if (problem.grad_lora_a.present())
    rank_gradient(grad_y_lora_b, shape.rank, x, shape.in_features, rows, common.lora_scale,
                  problem.grad_lora_a, /*transposed=*/false);
  if (problem.grad_lora_b.present()) {
    const Float32Rows x_lora_a =
        problem.x_lora_a.present()
            ? Float32Rows(problem.x_lora_a, rows.routed(), shape.rank)
            : rank_projection(x, shape.in_features, rows, shape.rank, common.lora_a,
                              /*transposed=*/true);
    rank_gradient(x_lora_a, shape.rank, grad_y, shape.out_features, rows, common.lora_scale,
                  problem.grad_lora_b, /*transposed=*/true);
  }
}

}  // namespace moeq::cpu
