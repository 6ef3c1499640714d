// The per-expert GEMM the forward and the backward's grad_x share on the CPU:
//   out_e = in_e · W_e' + scale · R_e · U_e
// forward:  in = x,  W_e' = W_eᵀ, R = x·Aᵀ,  U_e = B_eᵀ  (out = y)
// backward: in = dY, W_e' = W_e,  R = dY·B,  U_e = A_e   (out = grad_x)
#pragma once

#include "core/problems.hpp"
#include "cpu/expert_weight.hpp"
#include "cpu/expert_work.hpp"
#include "cpu/matrix_slice.hpp"

#include <cstdint>

namespace moeq::cpu {

struct ExpertProduct {
  ExpertProduct(const Float32Rows& input, int64_t contraction, MatrixSlice output,
                int64_t output_columns, bool output_along_storage_rows)
      : input(&input),
        contraction(contraction),
        output(output),
        output_columns(output_columns),
        output_along_storage_rows(output_along_storage_rows) {}

  // Adds scale · R_e · U_e, with U_e = expert_matrix(update, e, update_transposed).
  void add_lora(const Float32Rows& lora_rank_rows, int64_t lora_rank,
                const StridedTensor& update_stack, bool transposed, float lora_scale) {
    rank_rows = &lora_rank_rows;
    rank = lora_rank;
    update = &update_stack;
    update_transposed = transposed;
    scale = lora_scale;
  }

  const Float32Rows* input;  // [M, contraction]
  int64_t contraction;
  MatrixSlice output;  // [M, output_columns], any float dtype
  int64_t output_columns;
  // True when the output features index the stored weight's rows (forward with
  // [E, N, K], backward with [E, K, N]), false when they index its columns.
  bool output_along_storage_rows;

  // LoRA: R [M, rank] and U_e [rank, output_columns]. No LoRA while rank_rows is null.
  const Float32Rows* rank_rows = nullptr;
  int64_t rank = 0;
  const StridedTensor* update = nullptr;
  bool update_transposed = false;
  float scale = 1.0f;
};

// Writes the rows of every expert with rows; rows past rows.routed() stay untouched.
void run_expert_product(const ExpertProduct& product, const ExpertWeight& weight,
                        const ExpertRows& rows);

}  // namespace moeq::cpu
