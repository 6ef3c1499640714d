// The gated activation's test cases, shared by the CPU and GPU suites: random
// gate_up and grad_out (padded rows or not), a float64 reference written from the
// formula in moeq.h (not from the library's code), and the per-dtype tolerance.
#pragma once

#include "support/host_tensor.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <string>

namespace moeq_test {

struct SwigluCase {
  int64_t rows = 5;
  int64_t cols = 24;  // I
  int64_t row_padding = 0;
  DLDataType dtype = float32_type();
  int32_t layout = MOEQ_GATE_UP_HALVES;
  float alpha = 1.0f;
  float limit = INFINITY;
  float up_offset = 0.0f;
  bool null_config = false;  // pass NULL (only for the defaults)
  double input_scale = 2.0;

  moeq_swiglu_config config() const {
    moeq_swiglu_config c{};
    c.struct_size = sizeof c;
    c.layout = layout;
    c.alpha = alpha;
    c.limit = limit;
    c.up_offset = up_offset;
    return c;
  }
  std::string describe() const {
    std::ostringstream text;
    text << "[" << rows << ", 2 x " << cols << "] pad " << row_padding << " dtype bits " << int(dtype.bits)
         << " code " << int(dtype.code) << (layout == MOEQ_GATE_UP_INTERLEAVED ? " interleaved" : " halves")
         << " alpha " << alpha << " limit " << limit << " up_offset " << up_offset << (null_config ? " (NULL)" : "");
    return text.str();
  }
};

// A [rows, cols] tensor whose rows are `padding` elements longer than cols.
inline HostTensor padded_matrix(DLDataType dtype, int64_t rows, int64_t cols, int64_t padding) {
  if (padding == 0) return HostTensor(dtype, {rows, cols});
  return HostTensor(dtype, {rows, cols}, {cols + padding, 1});
}

struct SwigluInputs {
  HostTensor gate_up, grad_out;
  SwigluInputs(const SwigluCase& c, std::mt19937_64& rng)
      : gate_up(padded_matrix(c.dtype, c.rows, 2 * c.cols, c.row_padding)),
        grad_out(padded_matrix(c.dtype, c.rows, c.cols, c.row_padding)) {
    gate_up.fill_normal(rng, c.input_scale);
    grad_out.fill_normal(rng, 1.0);
  }
};

// Column of gate and up for output i (moeq.h's moeq_gate_layout).
inline int64_t reference_gate_column(const SwigluCase& c, int64_t i) {
  return c.layout == MOEQ_GATE_UP_INTERLEAVED ? 2 * i : i;
}
inline int64_t reference_up_column(const SwigluCase& c, int64_t i) {
  return c.layout == MOEQ_GATE_UP_INTERLEAVED ? 2 * i + 1 : c.cols + i;
}

// The pieces of the formula in moeq.h for one (gate, up): g = min(gate, limit),
// u = clamp(up, -limit, limit), s = sigmoid(alpha g).
struct ReferencePieces {
  double g, u, s;
};
inline ReferencePieces reference_pieces(const SwigluCase& c, double gate, double up) {
  const double limit = c.limit, g = std::min(gate, limit), u = std::max(-limit, std::min(up, limit));
  return {g, u, 1.0 / (1.0 + std::exp(-static_cast<double>(c.alpha) * g))};
}

// out = (u + up_offset) * g * s.
inline double reference_value(const SwigluCase& c, double gate, double up) {
  const ReferencePieces r = reference_pieces(c, gate, up);
  return (r.u + c.up_offset) * r.g * r.s;
}

// d out / d gate and d out / d up, by the chain rule on reference_value; zero past a
// clamp bound.
inline void reference_gradient(const SwigluCase& c, double gate, double up, double grad, double* grad_gate,
                               double* grad_up) {
  const ReferencePieces r = reference_pieces(c, gate, up);
  const double limit = c.limit, alpha = c.alpha;
  *grad_gate = gate > limit ? 0.0 : grad * (r.u + c.up_offset) * (r.s + r.g * alpha * r.s * (1.0 - r.s));
  *grad_up = (up > limit || up < -limit) ? 0.0 : grad * r.g * r.s;
}

// A reference result and the size of the terms it is computed from: float32
// arithmetic errs relative to the terms, not to the result, and d out / d gate's
// terms s and alpha g s (1 - s) cancel near g = -1.28 (alpha 1), where the result is
// near zero but the computation's error is not.
struct Expected {
  double value;
  double magnitude;
};

// Output i of row m, and the gradients at its gate and up.
inline Expected expected_output_at(const SwigluCase& c, const SwigluInputs& in, int64_t m, int64_t i) {
  const double gate = in.gate_up.at({m, reference_gate_column(c, i)});
  const double up = in.gate_up.at({m, reference_up_column(c, i)});
  const ReferencePieces r = reference_pieces(c, gate, up);
  return {reference_value(c, gate, up), (std::abs(r.u) + std::abs(c.up_offset)) * std::abs(r.g) * r.s};
}
inline void expected_gradient_at(const SwigluCase& c, const SwigluInputs& in, int64_t m, int64_t i,
                                 Expected* grad_gate, Expected* grad_up) {
  const double gate = in.gate_up.at({m, reference_gate_column(c, i)});
  const double up = in.gate_up.at({m, reference_up_column(c, i)});
  const double grad = in.grad_out.at({m, i});
  reference_gradient(c, gate, up, grad, &grad_gate->value, &grad_up->value);
  const ReferencePieces r = reference_pieces(c, gate, up);
  grad_gate->magnitude = std::abs(grad) * (std::abs(r.u) + std::abs(c.up_offset)) *
                         (r.s + std::abs(static_cast<double>(c.alpha) * r.g) * r.s * (1.0 - r.s));
  grad_up->magnitude = std::abs(grad * r.g) * r.s;
}

// The rounding of the stored result (half an ulp, relative to it), float32
// arithmetic and the exponential (a few float32 ulps of the terms), and an absolute
// floor for results near zero.
inline double swiglu_tolerance(const Expected& e, DLDataType dtype) {
  const double stored = dtype.code == kDLBfloat ? std::ldexp(1.0, -8)
                        : dtype.bits == 16     ? std::ldexp(1.0, -10)
                                               : 1e-6;
  const double arithmetic = std::ldexp(1.0, -20), floor = dtype.bits == 16 ? 1e-6 : 1e-7;
  return stored * std::abs(e.value) + arithmetic * e.magnitude + floor;
}

// |actual - expected| within `slack` times the tolerance (2 where two computed results
// are compared with each other).
inline void check_close(double actual, double expected, const Expected& reference, DLDataType dtype,
                        const char* what, int64_t m, int64_t i, double slack = 1.0) {
  const double bound = slack * swiglu_tolerance(reference, dtype);
  if (!(std::abs(actual - expected) <= bound)) {
    INFO(std::string(what) << "[" << m << ", " << i << "] = " << actual << ", expected " << expected
                           << " within " << bound << " (terms of size " << reference.magnitude << ")");
    CHECK(false);
  }
}
inline void check_close(double actual, const Expected& reference, DLDataType dtype, const char* what, int64_t m,
                        int64_t i) {
  check_close(actual, reference.value, reference, dtype, what, m, i);
}

// The forward output against the reference, and out's row padding still poisoned (NaN).
inline void check_forward_output(const SwigluCase& c, const SwigluInputs& in, const HostTensor& out) {
  for (int64_t m = 0; m < c.rows; ++m) {
    for (int64_t i = 0; i < c.cols; ++i)
      check_close(out.at({m, i}), expected_output_at(c, in, m, i), c.dtype, "out", m, i);
    for (int64_t pad = 0; pad < c.row_padding && m + 1 < c.rows; ++pad)
      CHECK(std::isnan(out.at({m, c.cols + pad})));
  }
}

inline void check_backward_output(const SwigluCase& c, const SwigluInputs& in, const HostTensor& grad_gate_up) {
  for (int64_t m = 0; m < c.rows; ++m) {
    for (int64_t i = 0; i < c.cols; ++i) {
      const int64_t gate = reference_gate_column(c, i), up = reference_up_column(c, i);
      Expected expected_gate{}, expected_up{};
      expected_gradient_at(c, in, m, i, &expected_gate, &expected_up);
      check_close(grad_gate_up.at({m, gate}), expected_gate, c.dtype, "grad_gate_up (gate)", m, gate);
      check_close(grad_gate_up.at({m, up}), expected_up, c.dtype, "grad_gate_up (up)", m, up);
    }
    for (int64_t pad = 0; pad < c.row_padding && m + 1 < c.rows; ++pad)
      CHECK(std::isnan(grad_gate_up.at({m, 2 * c.cols + pad})));
  }
}

// Every combination the suites sweep: dtypes, both layouts, SwiGLU and gpt-oss'
// clamped form (inputs spread past its limit), vector-sized and ragged widths,
// padded rows, and the NULL config.
inline std::vector<SwigluCase> swiglu_sweep(int64_t rows, const std::vector<int64_t>& widths) {
  std::vector<SwigluCase> cases;
  for (DLDataType dtype : {float32_type(), float16_type(), bfloat16_type()})
    for (int32_t layout : {MOEQ_GATE_UP_HALVES, MOEQ_GATE_UP_INTERLEAVED})
      for (bool gpt_oss : {false, true})
        for (int64_t cols : widths)
          for (int64_t padding : {0, 8, 3}) {
            SwigluCase c;
            c.rows = rows;
            c.cols = cols;
            c.row_padding = padding;
            c.dtype = dtype;
            c.layout = layout;
            if (gpt_oss) {
              c.alpha = 1.702f;
              c.limit = 7.0f;
              c.up_offset = 1.0f;
              c.input_scale = 6.0;
            }
            c.null_config = !gpt_oss && layout == MOEQ_GATE_UP_HALVES && padding == 3;
            cases.push_back(c);
          }
  return cases;
}

}  // namespace moeq_test
