// The backward's side of an expert GEMM test case, for the CPU and GPU suites:
// which gradients a call asks for, its own inputs and poisoned outputs on the
// host, the call's arguments over them, and the float64 gradients with bounds.
#pragma once

#include "support/expert_gemm_case.hpp"

#include <cmath>
#include <random>

namespace moeq_test {

// Which gradients a call asks for, and what it passes.
struct GradientRequest {
  bool grad_x = true;
  bool grad_lora_a = true;
  bool grad_lora_b = true;
  bool pass_x = true;
  bool pass_x_lora_a = false;               // a saved x_lora_a [M, r]
  DLDataType x_lora_a_type = float32_type();  // ... in this dtype
};

// The host tensors of a backward: grad_y and x_lora_a in, poisoned gradients out.
struct BackwardTensors {
  HostTensor grad_y, x_lora_a, grad_x, grad_lora_a, grad_lora_b;
};

inline BackwardTensors backward_tensors(ExpertGemmInputs& in, const GradientRequest& request,
                                        std::mt19937_64& rng) {
  const ExpertGemmCase& c = in.spec;
  BackwardTensors t;
  t.grad_y = activation_tensor(c.activation, c.rows(), c.out_features, c.row_padding);
  t.grad_y.fill_normal(rng);
  t.grad_x = activation_tensor(c.activation, c.rows(), c.in_features, c.row_padding);
  if (c.rank > 0) {
    t.grad_lora_a = HostTensor(c.lora, {c.experts(), c.rank, c.in_features});
    t.grad_lora_b = lora_b_tensor(c.lora, c.experts(), c.out_features, c.rank, c.peft_lora_b);
  }
  if (request.pass_x_lora_a) {
    // Random rather than x·Aᵀ (at its scale), so a backward that ignored it and
    // recomputed x·Aᵀ would fail instead of landing within the tolerance.
    t.x_lora_a = HostTensor(request.x_lora_a_type, {c.rows(), c.rank});
    t.x_lora_a.fill_normal(rng, std::sqrt(static_cast<double>(c.in_features)));
  }
  return t;
}

// The arguments of the request over host tensors: the case's inputs, t's grad_y
// and x_lora_a, and the gradients asked for written into `into`.
inline moeq_expert_gemm_grad_args request_args(ExpertGemmInputs& in, BackwardTensors& t,
                                               const GradientRequest& request, BackwardTensors& into) {
  moeq_expert_gemm_grad_args args =
      backward_args(in, t.grad_y.dl(), request.grad_x ? into.grad_x.dl() : nullptr,
                    request.grad_lora_a ? into.grad_lora_a.dl() : nullptr,
                    request.grad_lora_b ? into.grad_lora_b.dl() : nullptr);
  if (!request.pass_x) args.x = nullptr;
  if (request.pass_x_lora_a) args.x_lora_a = t.x_lora_a.dl();
  return args;
}

// One routed row m (of expert e) of the backward, given that row of dY (grad_y[n]):
// g_m = dY_m B_e [r] with its bounds.
inline void reference_grad_y_lora_b_row(const ExpertGemmInputs& in, int64_t e, const double* grad_y,
                                        double* value, double* bound) {
  const ExpertGemmCase& c = in.spec;
  reference_row(c.rank, c.out_features, grad_y, [&](int64_t j, int64_t n) { return in.b(e, n, j); }, value, bound);
}

// grad_x_m = dY_m W_e + s g_m A_e [K], given g_m and its bounds.
inline void reference_grad_x_row(const ExpertGemmInputs& in, int64_t e, const double* grad_y, const double* g,
                                 const double* g_bound, double* value, double* bound) {
  const ExpertGemmCase& c = in.spec;
  reference_row(c.in_features, c.out_features, grad_y, [&](int64_t k, int64_t n) { return in.w(e, n, k); },
                c.rank, c.lora_scale, g, g_bound, [&](int64_t k, int64_t j) { return in.a(e, j, k); }, value,
                bound);
}

// Row m's terms of dA_e += s g_mᵀ x_m and dB_e += s dY_mᵀ xa_m (xa_m: the row of
// x A_eᵀ the backward uses, with its bounds), into grad_lora_a [E, r, K] and
// grad_lora_b [E, N, r].
inline void accumulate_lora_gradients_row(const ExpertGemmInputs& in, int64_t e, int64_t m, const double* grad_y,
                                          const double* g, const double* g_bound, const double* xa,
                                          const double* xa_bound, Reference& grad_lora_a, Reference& grad_lora_b) {
  const ExpertGemmCase& c = in.spec;
  const int64_t K = c.in_features, N = c.out_features, R = c.rank;
  const double s = c.lora_scale;
  const double* x = in.x_values.data() + m * K;
  for (int64_t j = 0; j < R; ++j) {
    for (int64_t k = 0; k < K; ++k) {
      const size_t index = static_cast<size_t>((e * R + j) * K + k);
      grad_lora_a.value[index] += s * g[j] * x[k];
      grad_lora_a.bound[index] += std::fabs(s * x[k]) * g_bound[j];
    }
    for (int64_t n = 0; n < N; ++n) {
      const size_t index = static_cast<size_t>((e * N + n) * R + j);
      grad_lora_b.value[index] += s * grad_y[n] * xa[j];
      grad_lora_b.bound[index] += std::fabs(s * grad_y[n]) * xa_bound[j];
    }
  }
}

// The three gradients in float64 with their bounds: grad_x [routed, K],
// grad_lora_a [E, r, K], grad_lora_b [E, N, r] (from the saved x_lora_a when the
// request passes one).
struct ReferenceGradients {
  Reference grad_x, grad_lora_a, grad_lora_b;
};

inline ReferenceGradients reference_gradients(const ExpertGemmInputs& in, const BackwardTensors& t,
                                              const GradientRequest& request) {
  const ExpertGemmCase& c = in.spec;
  const int64_t K = c.in_features, N = c.out_features, R = c.rank;
  const std::vector<double> grad_y = dense_values(t.grad_y);
  Reference x_lora_a = reference_x_lora_a(in);
  if (request.pass_x_lora_a) {
    x_lora_a.value = dense_values(t.x_lora_a);
    x_lora_a.bound.resize(x_lora_a.value.size());
    for (size_t i = 0; i < x_lora_a.value.size(); ++i) x_lora_a.bound[i] = std::fabs(x_lora_a.value[i]);
  }
  ReferenceGradients out;
  out.grad_x.resize(static_cast<size_t>(c.routed_rows() * K));
  out.grad_lora_a.resize(static_cast<size_t>(c.experts() * R * K));
  out.grad_lora_b.resize(static_cast<size_t>(c.experts() * N * R));
  std::vector<double> g(static_cast<size_t>(R)), g_bound(static_cast<size_t>(R));
  for (int64_t e = 0; e < c.experts(); ++e)
    for (int64_t m = in.begin(e); m < in.begin(e) + c.rows_per_expert[e]; ++m) {
      const double* grad_y_row = grad_y.data() + m * N;
      reference_grad_y_lora_b_row(in, e, grad_y_row, g.data(), g_bound.data());
      reference_grad_x_row(in, e, grad_y_row, g.data(), g_bound.data(), out.grad_x.value.data() + m * K,
                           out.grad_x.bound.data() + m * K);
      accumulate_lora_gradients_row(in, e, m, grad_y_row, g.data(), g_bound.data(),
                                    x_lora_a.value.data() + m * R, x_lora_a.bound.data() + m * R,
                                    out.grad_lora_a, out.grad_lora_b);
    }
  return out;
}

}  // namespace moeq_test
