// The rank-r parts of the expert GEMM on the CPU: projections onto the LoRA rank
// (x·A_eᵀ, dY·B_e) and the LoRA weight gradients.
#pragma once

#include "core/problems.hpp"
#include "cpu/expert_work.hpp"
#include "cpu/matrix_slice.hpp"

#include <cstdint>

namespace moeq::cpu {

// R[M, r] with R_e = input_e · P_e for every expert, where P_e [columns, r] is
// expert_matrix(stack, e, transposed): x·A_eᵀ from lora_a (transposed), dY·B_e
// from lora_b. Rows past rows.routed() are not computed.
Float32Rows rank_projection(const Float32Rows& input, int64_t columns, const ExpertRows& rows,
                            int64_t rank, const StridedTensor& stack, bool transposed);

// G_e[r, columns] = scale · R_eᵀ · input_e for every expert, written through
// expert_matrix(gradient, e, transposed) in the gradient's dtype, zero for experts
// without rows: grad_lora_a (R = dY·B, input = x) and, transposed, grad_lora_b
// (R = x·Aᵀ, input = dY).
void rank_gradient(const Float32Rows& rank_rows, int64_t rank, const Float32Rows& input,
                   int64_t columns, const ExpertRows& rows, float scale,
                   const StridedTensor& gradient, bool transposed);

}  // namespace moeq::cpu
