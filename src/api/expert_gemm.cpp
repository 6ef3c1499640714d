// C entry points of the expert GEMM with LoRA: forward, backward, workspace sizes.
#include "api/device_dispatch.hpp"
#include "api/expert_gemm_check.hpp"
#include "core/backend.hpp"

namespace moeq {
namespace {

void expect_workspace(const void* workspace, size_t given, size_t needed) {
  if (workspace != nullptr && given < needed)
    fail(MOEQ_ERR_WORKSPACE_TOO_SMALL, "workspace_bytes: expected at least " +
                                           std::to_string(needed) + ", got " +
                                           std::to_string(given));
}

}  // namespace
}  // namespace moeq

extern "C" {

MOEQ_API moeq_status moeq_expert_gemm_lora(const moeq_expert_gemm_args* args, void* stream) {
  using namespace moeq;
  return api_guard([&] {
    Device device;
    const ExpertGemmProblem problem = check_expert_gemm(args, &device);
    if (device.kind == DeviceKind::Cpu) return cpu::expert_gemm(problem);
    require_cuda_device(device, "x");
    expect_workspace(args->workspace, args->workspace_bytes, cuda::expert_gemm_workspace_bytes(problem));
    cuda::expert_gemm(problem, stream);
  });
}

MOEQ_API moeq_status moeq_expert_gemm_lora_backward(const moeq_expert_gemm_grad_args* args,
                                                    void* stream) {
  using namespace moeq;
  return api_guard([&] {
    Device device;
    const ExpertGemmGradProblem problem = check_expert_gemm_grad(args, &device);
    if (device.kind == DeviceKind::Cpu) return cpu::expert_gemm_backward(problem);
    require_cuda_device(device, "grad_y");
    expect_workspace(args->workspace, args->workspace_bytes,
                     cuda::expert_gemm_backward_workspace_bytes(problem));
    cuda::expert_gemm_backward(problem, stream);
  });
}

MOEQ_API moeq_status moeq_expert_gemm_workspace_size(const moeq_expert_gemm_args* args,
                                                     size_t* bytes) {
  using namespace moeq;
  return api_guard([&] {
    if (bytes == nullptr) fail_argument("bytes", "expected a place for the size, got NULL");
    Device device;
    const ExpertGemmProblem problem = check_expert_gemm(args, &device);
    *bytes = device.kind == DeviceKind::Cpu ? 0 : cuda::expert_gemm_workspace_bytes(problem);
  });
}

MOEQ_API moeq_status moeq_expert_gemm_grad_workspace_size(const moeq_expert_gemm_grad_args* args,
                                                          size_t* bytes) {
  using namespace moeq;
  return api_guard([&] {
    if (bytes == nullptr) fail_argument("bytes", "expected a place for the size, got NULL");
    Device device;
    const ExpertGemmGradProblem problem = check_expert_gemm_grad(args, &device);
    *bytes = device.kind == DeviceKind::Cpu ? 0
                                            : cuda::expert_gemm_backward_workspace_bytes(problem);
  });
}

}  // extern "C"
