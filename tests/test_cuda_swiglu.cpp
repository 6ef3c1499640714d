// The GPU gated activation against the float64 reference and the CPU backend, on
// the 16-byte vector path (aligned rows of whole vectors) and the element-wise one
// (ragged widths, odd padding, an offset base). Skipped where no GPU is visible.
#include "support/host_tensor.hpp"
#include "support/swiglu_case.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#if MOEQ_WITH_CUDA
#include "support/device_tensor.hpp"

#include <random>

using namespace moeq_test;

namespace {

bool skip_without_gpu() {
  if (moeq_cuda_available() != 0) return false;
  MESSAGE("no CUDA GPU visible: CUDA SwiGLU test skipped");
  return true;
}

void require_ok(moeq_status status) {
  INFO(std::string(moeq_last_error()));
  REQUIRE(status == MOEQ_OK);
}

// GPU and CPU results of one case, each checked against the reference, and against
// each other within the same tolerance.
void check_case(const SwigluCase& c, uint64_t seed) {
  CAPTURE(c.describe());
  std::mt19937_64 rng(seed);
  SwigluInputs in(c, rng);
  moeq_swiglu_config storage = c.config();
  const moeq_swiglu_config* config = c.null_config ? nullptr : &storage;

  HostTensor out = padded_matrix(c.dtype, c.rows, c.cols, c.row_padding), cpu_out = out;
  DeviceTensor gate_up_device(in.gate_up), grad_out_device(in.grad_out), out_device(out);
  require_ok(moeq_swiglu(config, gate_up_device.dl(), out_device.dl(), nullptr));
  REQUIRE_CUDA(cudaDeviceSynchronize());
  out_device.download(out);
  check_forward_output(c, in, out);
  require_ok(moeq_swiglu(config, in.gate_up.dl(), cpu_out.dl(), nullptr));
  for (int64_t m = 0; m < c.rows; ++m)
    for (int64_t i = 0; i < c.cols; ++i)
      check_close(out.at({m, i}), cpu_out.at({m, i}), expected_output_at(c, in, m, i), c.dtype, "out vs CPU", m, i,
                  2.0);

  HostTensor grad = padded_matrix(c.dtype, c.rows, 2 * c.cols, c.row_padding), cpu_grad = grad;
  DeviceTensor grad_device(grad);
  require_ok(moeq_swiglu_backward(config, gate_up_device.dl(), grad_out_device.dl(), grad_device.dl(), nullptr));
  REQUIRE_CUDA(cudaDeviceSynchronize());
  grad_device.download(grad);
  check_backward_output(c, in, grad);
  require_ok(moeq_swiglu_backward(config, in.gate_up.dl(), in.grad_out.dl(), cpu_grad.dl(), nullptr));
  for (int64_t m = 0; m < c.rows; ++m)
    for (int64_t i = 0; i < c.cols; ++i) {
      Expected gate{}, up{};
      expected_gradient_at(c, in, m, i, &gate, &up);
      const int64_t gate_column = reference_gate_column(c, i), up_column = reference_up_column(c, i);
      check_close(grad.at({m, gate_column}), cpu_grad.at({m, gate_column}), gate, c.dtype,
                  "grad_gate_up (gate) vs CPU", m, gate_column, 2.0);
      check_close(grad.at({m, up_column}), cpu_grad.at({m, up_column}), up, c.dtype, "grad_gate_up (up) vs CPU", m,
                  up_column, 2.0);
    }
}

}  // namespace

TEST_CASE("GPU out and grad_gate_up match the float64 reference and the CPU backend") {
  if (skip_without_gpu()) return;
  uint64_t seed = 100;
  // 8, 40, 768: whole vectors (padding 0 and 8 keep rows aligned, 3 does not); 13: ragged.
  for (const SwigluCase& c : swiglu_sweep(37, {8, 13, 40, 768})) check_case(c, seed++);
}

TEST_CASE("a training-sized activation (16384 x 2 x 768 bf16) on the vector path") {
  if (skip_without_gpu()) return;
  SwigluCase c;
  c.rows = 16384;
  c.cols = 768;
  c.dtype = bfloat16_type();
  check_case(c, 7);
}
#else
TEST_CASE("the CUDA SwiGLU test needs a CUDA build") { MESSAGE("built without CUDA: skipped"); }
#endif
