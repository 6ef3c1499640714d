// CPU expert GEMM with LoRA — placeholder until the BLAS-backed version lands.
#include "core/backend.hpp"
#include "core/error.hpp"

namespace moeq::cpu {
void expert_gemm(const ExpertGemmProblem&) { fail(MOEQ_ERR_UNSUPPORTED, "expert_gemm_lora: CPU path pending"); }
void expert_gemm_backward(const ExpertGemmGradProblem&) { fail(MOEQ_ERR_UNSUPPORTED, "expert_gemm_lora_backward: CPU path pending"); }
}  // namespace moeq::cpu
