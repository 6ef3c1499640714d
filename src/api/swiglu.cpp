// C entry points of the gated activation (SwiGLU), forward and backward: argument
// checks, then a backend.
#include "api/device_dispatch.hpp"
#include "api/matrix_check.hpp"
#include "api/qtensor_check.hpp"
#include "core/backend.hpp"

#include <cmath>
#include <string>

namespace moeq {
namespace {

// The configuration (NULL: SwiGLU over halves) and gate_up: what both passes share.
SwigluProblem check_swiglu_common(const moeq_swiglu_config* config, const DLTensor* gate_up_arg,
                                  Device* device) {
  SwigluProblem problem;  // default params: SwiGLU over halves
  if (config != nullptr) {
    expect_struct_size(config->struct_size, sizeof(moeq_swiglu_config), "config");
    if (config->layout != MOEQ_GATE_UP_HALVES && config->layout != MOEQ_GATE_UP_INTERLEAVED)
      fail_argument("config.layout", "expected MOEQ_GATE_UP_HALVES (0) or MOEQ_GATE_UP_INTERLEAVED (1), got " +
                                         std::to_string(config->layout));
    if (!std::isfinite(config->alpha))
      fail_argument("config.alpha", "expected a finite value, got " + std::to_string(config->alpha));
    if (!(config->limit > 0.0f))
      fail_argument("config.limit", "expected a value > 0 (INFINITY: no clamp), got " +
                                        std::to_string(config->limit));
    if (!std::isfinite(config->up_offset))
      fail_argument("config.up_offset", "expected a finite value, got " + std::to_string(config->up_offset));
    problem.params = {config->alpha, config->limit, config->up_offset, config->layout == MOEQ_GATE_UP_INTERLEAVED};
  }
  const DLTensor& gate_up = require_tensor(gate_up_arg, "gate_up");
  *device = device_of(gate_up, "gate_up");
  expect_ndim(gate_up, 2, "gate_up", "[M, 2I]");
  if (gate_up.shape[1] % 2 != 0)
    fail_argument("gate_up", "expected an even number of columns (gate and up, [M, 2I]), got " +
                                 shape_string(gate_up));
  problem.rows = gate_up.shape[0];
  problem.cols = gate_up.shape[1] / 2;
  problem.gate_up = row_major_matrix(gate_up, "gate_up");
  problem.type = problem.gate_up.type;
  problem.device_id = device->id;
  return problem;
}

// An [M, I] or [M, 2I] tensor of gate_up's dtype on its device.
StridedTensor check_matrix_like(const DLTensor* argument, const std::string& name, const SwigluProblem& problem,
                                const Device& device, int64_t cols, const char* meaning) {
  const DLTensor& tensor = require_tensor(argument, name);
  expect_device(tensor, device, name);
  expect_shape(tensor, {problem.rows, cols}, name, meaning);
  StridedTensor view = row_major_matrix(tensor, name);
  expect_type(view.type, problem.type, name, "gate_up's dtype");
  return view;
}

void run(const SwigluProblem& problem, const Device& device, bool backward, void* stream) {
  // Nothing to write; an empty tensor's data may be NULL, so no backend forms a
  // pointer from it (fuzz_c_api found the CPU backend doing so).
  if (problem.rows == 0 || problem.cols == 0) return;
  if (device.kind == DeviceKind::Cpu) {
    backward ? cpu::swiglu_backward(problem) : cpu::swiglu(problem);
    return;
  }
  require_cuda_device(device, "gate_up");
  backward ? cuda::swiglu_backward(problem, stream) : cuda::swiglu(problem, stream);
}

}  // namespace
}  // namespace moeq

extern "C" {

MOEQ_API moeq_status moeq_swiglu(const moeq_swiglu_config* config, const DLTensor* gate_up, DLTensor* out,
                                 void* stream) {
  using namespace moeq;
  return api_guard([&] {
    Device device;
    SwigluProblem problem = check_swiglu_common(config, gate_up, &device);
    problem.out = check_matrix_like(out, "out", problem, device, problem.cols, "[M, I]");
    expect_no_overlap(*out, "out", *gate_up, "gate_up");
    run(problem, device, false, stream);
  });
}

MOEQ_API moeq_status moeq_swiglu_backward(const moeq_swiglu_config* config, const DLTensor* gate_up,
                                          const DLTensor* grad_out, DLTensor* grad_gate_up, void* stream) {
  using namespace moeq;
  return api_guard([&] {
    Device device;
    SwigluProblem problem = check_swiglu_common(config, gate_up, &device);
    problem.grad_out = check_matrix_like(grad_out, "grad_out", problem, device, problem.cols, "[M, I]");
    problem.grad_gate_up =
        check_matrix_like(grad_gate_up, "grad_gate_up", problem, device, 2 * problem.cols, "[M, 2I]");
    expect_no_overlap(*grad_gate_up, "grad_gate_up", *gate_up, "gate_up");
    expect_no_overlap(*grad_gate_up, "grad_gate_up", *grad_out, "grad_out");
    run(problem, device, true, stream);
  });
}

}  // extern "C"
