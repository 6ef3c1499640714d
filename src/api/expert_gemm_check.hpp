// Argument checks of the expert GEMM, forward and backward: DLPack views in,
// validated ExpertGemm problems out.
#pragma once

#include "core/problems.hpp"
#include "core/tensor_check.hpp"

#include <moeq/moeq.h>

namespace moeq {

ExpertGemmProblem check_expert_gemm(const moeq_expert_gemm_args* args, Device* device);
ExpertGemmGradProblem check_expert_gemm_grad(const moeq_expert_gemm_grad_args* args,
                                             Device* device);

}  // namespace moeq
