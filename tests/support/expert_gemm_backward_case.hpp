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
  const double s = c.lora_scale;
  const std::vector<double> grad_y = dense_values(t.grad_y);
  Reference x_lora_a = reference_x_lora_a(in);
  if (request.pass_x_lora_a) {
    x_lora_a.value = dense_values(t.x_lora_a);
    x_lora_a.bound.resize(x_lora_a.value.size());
    for (size_t i = 0; i < x_lora_a.value.size(); ++i) x_lora_a.bound[i] = std::fabs(x_lora_a.value[i]);
  }
  // g = dY_e B_e [routed, r]
  Reference g;
  g.resize(static_cast<size_t>(c.routed_rows() * R));
  for (int64_t e = 0; e < c.experts(); ++e)
    for (int64_t m = in.begin(e); m < in.begin(e) + c.rows_per_expert[e]; ++m)
      for (int64_t j = 0; j < R; ++j)
        for (int64_t n = 0; n < N; ++n) {
          const double term = grad_y[m * N + n] * in.b(e, n, j);
          g.value[m * R + j] += term;
          g.bound[m * R + j] += std::fabs(term);
        }
  ReferenceGradients out;
  out.grad_x.resize(static_cast<size_t>(c.routed_rows() * K));
  out.grad_lora_a.resize(static_cast<size_t>(c.experts() * R * K));
  out.grad_lora_b.resize(static_cast<size_t>(c.experts() * N * R));
  for (int64_t e = 0; e < c.experts(); ++e)
    for (int64_t m = in.begin(e); m < in.begin(e) + c.rows_per_expert[e]; ++m) {
      for (int64_t k = 0; k < K; ++k) {
        double sum = 0.0, bound = 0.0;
        for (int64_t n = 0; n < N; ++n) {
          const double term = grad_y[m * N + n] * in.w(e, n, k);
          sum += term;
          bound += std::fabs(term);
        }
        for (int64_t j = 0; j < R; ++j) {
          sum += s * g.value[m * R + j] * in.a(e, j, k);
          bound += std::fabs(s * in.a(e, j, k)) * g.bound[m * R + j];
        }
        out.grad_x.value[m * K + k] = sum;
        out.grad_x.bound[m * K + k] = bound;
      }
      for (int64_t j = 0; j < R; ++j) {
        for (int64_t k = 0; k < K; ++k) {
          const size_t index = static_cast<size_t>((e * R + j) * K + k);
          const double x = in.x_values[m * K + k];
          out.grad_lora_a.value[index] += s * g.value[m * R + j] * x;
          out.grad_lora_a.bound[index] += std::fabs(s * x) * g.bound[m * R + j];
        }
        for (int64_t n = 0; n < N; ++n) {
          const size_t index = static_cast<size_t>((e * N + n) * R + j);
          const double dy = grad_y[m * N + n];
          out.grad_lora_b.value[index] += s * dy * x_lora_a.value[m * R + j];
          out.grad_lora_b.bound[index] += std::fabs(s * dy) * x_lora_a.bound[m * R + j];
        }
      }
    }
  return out;
}

}  // namespace moeq_test
