// The CPU gated activation (moeq_swiglu, moeq_swiglu_backward) against a float64
// reference, its reference against finite differences, and its bad-input errors.
#include "support/expect_error.hpp"
#include "support/swiglu_case.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <cmath>
#include <random>
#include <string>

using namespace moeq_test;

namespace {

const moeq_swiglu_config* config_arg(const SwigluCase& c, moeq_swiglu_config& storage) {
  storage = c.config();
  return c.null_config ? nullptr : &storage;
}

void check_case(const SwigluCase& c, uint64_t seed) {
  CAPTURE(c.describe());
  std::mt19937_64 rng(seed);
  SwigluInputs in(c, rng);
  moeq_swiglu_config config{};
  HostTensor out = padded_matrix(c.dtype, c.rows, c.cols, c.row_padding);
  moeq_status status = moeq_swiglu(config_arg(c, config), in.gate_up.dl(), out.dl(), nullptr);
  INFO(std::string(moeq_last_error()));
  REQUIRE(status == MOEQ_OK);
  check_forward_output(c, in, out);

  HostTensor grad_gate_up = padded_matrix(c.dtype, c.rows, 2 * c.cols, c.row_padding);
  status = moeq_swiglu_backward(config_arg(c, config), in.gate_up.dl(), in.grad_out.dl(), grad_gate_up.dl(), nullptr);
  INFO(std::string(moeq_last_error()));
  REQUIRE(status == MOEQ_OK);
  check_backward_output(c, in, grad_gate_up);
}

}  // namespace

TEST_CASE("out and grad_gate_up match the float64 reference over dtypes, layouts, clamps, widths and padding") {
  uint64_t seed = 1;
  for (const SwigluCase& c : swiglu_sweep(6, {1, 8, 13, 40})) check_case(c, seed++);
}

TEST_CASE("the reference gradient agrees with central differences of the reference forward") {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(0.0, 4.0);
  for (bool gpt_oss : {false, true}) {
    SwigluCase c;
    if (gpt_oss) {
      c.alpha = 1.702f;
      c.limit = 7.0f;
      c.up_offset = 1.0f;
    }
    for (int trial = 0; trial < 200; ++trial) {
      const double gate = normal(rng), up = normal(rng), h = 1e-6;
      // Away from the kinks at the clamp bounds, where the derivative jumps.
      if (std::abs(gate - c.limit) < 1e-3 || std::abs(std::abs(up) - c.limit) < 1e-3) continue;
      double grad_gate = 0, grad_up = 0;
      reference_gradient(c, gate, up, 1.0, &grad_gate, &grad_up);
      const double numeric_gate = (reference_value(c, gate + h, up) - reference_value(c, gate - h, up)) / (2 * h);
      const double numeric_up = (reference_value(c, gate, up + h) - reference_value(c, gate, up - h)) / (2 * h);
      CHECK(grad_gate == doctest::Approx(numeric_gate).epsilon(1e-6).scale(1.0));
      CHECK(grad_up == doctest::Approx(numeric_up).epsilon(1e-6).scale(1.0));
    }
  }
}

TEST_CASE("no rows or no columns: nothing to write, not an error") {
  for (int64_t rows : {0, 3}) {
    HostTensor gate_up(float32_type(), {rows, rows == 0 ? 8 : 0}), out(float32_type(), {rows, rows == 0 ? 4 : 0});
    CHECK(moeq_swiglu(nullptr, gate_up.dl(), out.dl(), nullptr) == MOEQ_OK);
  }
}

TEST_CASE("NaN inputs give NaN outputs, not a clamp bound") {
  SwigluCase c;
  c.rows = 1;
  c.cols = 2;
  c.limit = 7.0f;
  HostTensor gate_up(float32_type(), {1, 4}), out(float32_type(), {1, 2});
  gate_up.set({0, 0}, NAN);
  gate_up.set({0, 1}, 1.0);
  gate_up.set({0, 2}, 1.0);
  gate_up.set({0, 3}, NAN);
  const moeq_swiglu_config config = c.config();
  REQUIRE(moeq_swiglu(&config, gate_up.dl(), out.dl(), nullptr) == MOEQ_OK);
  CHECK(std::isnan(out.at({0, 0})));
  CHECK(std::isnan(out.at({0, 1})));
}

TEST_CASE("bad arguments name themselves and leave the output unwritten") {
  HostTensor gate_up(bfloat16_type(), {4, 16}), out(bfloat16_type(), {4, 8}), grad_out(bfloat16_type(), {4, 8}),
      grad_gate_up(bfloat16_type(), {4, 16});
  std::mt19937_64 rng(3);
  gate_up.fill_normal(rng);
  grad_out.fill_normal(rng);
  moeq_swiglu_config config = SwigluCase{}.config();
  auto out_untouched = [&] {
    for (int64_t i = 0; i < out.numel(); ++i) CHECK(std::isnan(out.flat(i)));
  };

  SUBCASE("gate_up NULL") {
    expect_error(moeq_swiglu(&config, nullptr, out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "gate_up:");
  }
  SUBCASE("an odd number of gate_up columns") {
    HostTensor odd(bfloat16_type(), {4, 15});
    expect_error(moeq_swiglu(&config, odd.dl(), out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "gate_up:");
  }
  SUBCASE("gate_up of 3 dims") {
    HostTensor cube(bfloat16_type(), {2, 2, 16});
    expect_error(moeq_swiglu(&config, cube.dl(), out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "gate_up:");
  }
  SUBCASE("gate_up with columns apart") {
    HostTensor strided(bfloat16_type(), {4, 16}, {32, 2});
    expect_error(moeq_swiglu(&config, strided.dl(), out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "gate_up:");
  }
  SUBCASE("out of the wrong shape") {
    HostTensor wide(bfloat16_type(), {4, 16});
    expect_error(moeq_swiglu(&config, gate_up.dl(), wide.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "out:");
  }
  SUBCASE("out of another dtype") {
    HostTensor other(float16_type(), {4, 8});
    expect_error(moeq_swiglu(&config, gate_up.dl(), other.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "out:");
  }
  SUBCASE("out overlapping gate_up") {
    DLTensor alias = *out.dl();
    alias.data = gate_up.data();
    expect_error(moeq_swiglu(&config, gate_up.dl(), &alias, nullptr), MOEQ_ERR_INVALID_ARGUMENT, "out:");
  }
  SUBCASE("a layout that does not exist") {
    config.layout = 2;
    expect_error(moeq_swiglu(&config, gate_up.dl(), out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT,
                 "config.layout:");
  }
  SUBCASE("alpha not finite") {
    config.alpha = NAN;
    expect_error(moeq_swiglu(&config, gate_up.dl(), out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT,
                 "config.alpha:");
  }
  SUBCASE("limit 0 or NaN") {
    for (float limit : {0.0f, -1.0f, NAN}) {
      config.limit = limit;
      expect_error(moeq_swiglu(&config, gate_up.dl(), out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT,
                   "config.limit:");
    }
  }
  SUBCASE("up_offset infinite") {
    config.up_offset = INFINITY;
    expect_error(moeq_swiglu(&config, gate_up.dl(), out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT,
                 "config.up_offset:");
  }
  SUBCASE("a config struct from an older header") {
    config.struct_size = 8;
    expect_error(moeq_swiglu(&config, gate_up.dl(), out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT,
                 "config.struct_size:");
  }
  SUBCASE("backward: grad_out of the wrong shape") {
    HostTensor short_grad(bfloat16_type(), {3, 8});
    expect_error(moeq_swiglu_backward(&config, gate_up.dl(), short_grad.dl(), grad_gate_up.dl(), nullptr),
                 MOEQ_ERR_INVALID_ARGUMENT, "grad_out:");
  }
  SUBCASE("backward: grad_gate_up NULL") {
    expect_error(moeq_swiglu_backward(&config, gate_up.dl(), grad_out.dl(), nullptr, nullptr),
                 MOEQ_ERR_INVALID_ARGUMENT, "grad_gate_up:");
  }
  SUBCASE("backward: grad_gate_up overlapping grad_out") {
    DLTensor alias = *grad_gate_up.dl();
    alias.data = grad_out.data();
    expect_error(moeq_swiglu_backward(&config, gate_up.dl(), grad_out.dl(), &alias, nullptr),
                 MOEQ_ERR_INVALID_ARGUMENT, "grad_gate_up:");
  }
  out_untouched();
}

TEST_CASE("CUDA tensors without a GPU give MOEQ_ERR_NO_DEVICE or MOEQ_ERR_UNSUPPORTED naming gate_up") {
  if (moeq_cuda_available()) {
    MESSAGE("skipped: a GPU is present");
    return;
  }
  HostTensor gate_up(float32_type(), {2, 8}), out(float32_type(), {2, 4});
  gate_up.dl()->device = {kDLCUDA, 0};
  out.dl()->device = {kDLCUDA, 0};
  const moeq_status status = moeq_swiglu(nullptr, gate_up.dl(), out.dl(), nullptr);
  CHECK((status == MOEQ_ERR_NO_DEVICE || status == MOEQ_ERR_UNSUPPORTED));
  CHECK(std::string(moeq_last_error()).rfind("gate_up:", 0) == 0);
}

TEST_CASE("out on another device than gate_up is an error naming out") {
  HostTensor gate_up(float32_type(), {2, 8}), out(float32_type(), {2, 4});
  out.dl()->device = {kDLCUDA, 0};
  expect_error(moeq_swiglu(nullptr, gate_up.dl(), out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "out:");
}
