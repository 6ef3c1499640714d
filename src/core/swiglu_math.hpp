// The gated activation's arithmetic, one definition for the CPU backend and the
// CUDA kernel: float32 in, float32 out, the caller rounds once.
#pragma once

#include "core/problems.hpp"
#include "core/scalar.hpp"

#include <cmath>
#include <cstdint>

namespace moeq {

// Columns of gate_up that hold element i's gate and up (cols = I).
MOEQ_HOST_DEVICE int64_t gate_column(int64_t i, bool interleaved) { return interleaved ? 2 * i : i; }
MOEQ_HOST_DEVICE int64_t up_column(int64_t i, int64_t cols, bool interleaved) {
  return interleaved ? 2 * i + 1 : cols + i;
}

// Clamps written as comparisons (not fminf/fmaxf, which drop a NaN operand), so a NaN
// input gives a NaN output instead of a clamp bound.
MOEQ_HOST_DEVICE float clamped_gate(float gate, const SwigluParams& p) { return gate > p.limit ? p.limit : gate; }
MOEQ_HOST_DEVICE float clamped_up(float up, const SwigluParams& p) {
  return up > p.limit ? p.limit : (up < -p.limit ? -p.limit : up);
}

MOEQ_HOST_DEVICE float logistic(float x) { return 1.0f / (1.0f + expf(-x)); }

// (u + up_offset) * g * sigmoid(alpha * g), g and u clamped.
MOEQ_HOST_DEVICE float swiglu_value(float gate, float up, const SwigluParams& p) {
  const float g = clamped_gate(gate, p);
  return (clamped_up(up, p) + p.up_offset) * (g * logistic(p.alpha * g));
}

struct SwigluGradient {
  float gate;
  float up;
};

// d out / d gate = (u + up_offset) * s * (1 + alpha * g * (1 - s)) with s =
// sigmoid(alpha * g), and d out / d up = g * s; zero past a clamp bound (a bound
// itself passes the gradient, as torch.clamp's backward).
MOEQ_HOST_DEVICE SwigluGradient swiglu_gradient(float gate, float up, float grad, const SwigluParams& p) {
  const float g = clamped_gate(gate, p);
  const float s = logistic(p.alpha * g);
  const float shifted_up = clamped_up(up, p) + p.up_offset;
  SwigluGradient result;
  result.gate = gate > p.limit ? 0.0f : grad * shifted_up * (s * (1.0f + p.alpha * g * (1.0f - s)));
  result.up = (up > p.limit || up < -p.limit) ? 0.0f : grad * (g * s);
  return result;
}

}  // namespace moeq
