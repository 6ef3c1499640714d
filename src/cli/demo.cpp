// `moeq demo`: quantize a GLM-4.7-Flash-shaped gate_up expert weight, route random
// tokens, run the expert GEMM with LoRA forward and backward on the CPU, and check
// the results against a float64 reference.
#include "cli/demo.hpp"

#include "cli/host_buffer.hpp"
#include "core/scalar.hpp"

#include <moeq/moeq.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

namespace moeq::cli {
namespace {

constexpr DLDataType kBFloat16{kDLBfloat, 16, 1};
constexpr DLDataType kFloat32{kDLFloat, 32, 1};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

bool check(moeq_status status, const char* what) {
  if (status == MOEQ_OK) return true;
  std::fprintf(stderr, "%s failed: %s: %s\n", what, moeq_status_name(status), moeq_last_error());
  return false;
}

// Counter-based normal-ish values (sum of four uniforms), cheap enough for
// hundreds of millions of elements and the same on any thread count.
float pseudo_normal(uint64_t seed, uint64_t index) {
  float sum = 0.0f;
  for (uint64_t k = 0; k < 4; ++k) {
    uint64_t z = seed + (index * 4 + k) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    sum += static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
  }
  return (sum - 2.0f) * 1.7320508f;  // unit variance
}

void fill_bfloat16(HostBuffer& buffer, int64_t count, uint64_t seed, float scale) {
  uint16_t* data = buffer.as<uint16_t>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i)
    data[i] = float_to_bfloat16_bits(scale * pseudo_normal(seed, static_cast<uint64_t>(i)));
}

void fill_float32(HostBuffer& buffer, int64_t count, uint64_t seed, float scale) {
  float* data = buffer.as<float>();
  for (int64_t i = 0; i < count; ++i) data[i] = scale * pseudo_normal(seed, static_cast<uint64_t>(i));
}

double relative_error(const std::vector<double>& value, const std::vector<double>& reference) {
  double error = 0.0, norm = 0.0;
  for (size_t i = 0; i < value.size(); ++i) {
    error += (value[i] - reference[i]) * (value[i] - reference[i]);
    norm += reference[i] * reference[i];
  }
  return std::sqrt(error / std::max(norm, 1e-300));
}

}  // namespace

int run_demo(const DemoOptions& o) {
  const int64_t E = o.experts, K = o.hidden, N = 2 * o.intermediate, r = o.rank;
  const int64_t rows = o.tokens * std::min(o.top_k, E);
  std::printf("moeq demo — %s\n", moeq_build_info());
  std::printf("GLM-4.7-Flash-shaped gate_up experts [E=%lld, N=2I=%lld, K=H=%lld], %lld tokens x top-%lld, "
              "LoRA rank %lld, %s blocksize %d%s, on the CPU\n\n",
              (long long)E, (long long)N, (long long)K, (long long)o.tokens, (long long)o.top_k,
              (long long)r, o.format.c_str(), o.blocksize, o.nested ? " nested" : "");

  // 1. The bf16 expert weight, and its 4-bit version.
  const int64_t weight_count = E * N * K;
  HostBuffer weight(kBFloat16, {E, N, K});
  fill_bfloat16(weight, weight_count, o.seed, 0.02f);
  moeq_quant_config config{sizeof(moeq_quant_config), o.format == "nf4" ? MOEQ_FORMAT_NF4 : MOEQ_FORMAT_FP4,
                           o.blocksize, o.nested ? 1 : 0};
  moeq_quant_layout layout{};
  layout.struct_size = sizeof(layout);
  const int64_t weight_shape[3] = {E, N, K};
  if (!check(moeq_quantized_layout(&config, 3, weight_shape, &layout), "moeq_quantized_layout")) return 1;
  HostBuffer packed({kDLUInt, 8, 1}, {layout.packed_bytes});
  HostBuffer absmax(layout.absmax_dtype, {layout.absmax_count});
  HostBuffer nested_absmax(kFloat32, {layout.nested_absmax_count});
  HostBuffer nested_code(kFloat32, {layout.nested_code_count});
  HostBuffer nested_offset(kFloat32, {layout.nested_offset_count});
  moeq_qtensor q{};
  q.struct_size = sizeof(q);
  q.packed = *packed.dl();
  q.absmax = *absmax.dl();
  q.nested_absmax = *nested_absmax.dl();
  q.nested_code = *nested_code.dl();
  q.nested_offset = *nested_offset.dl();
  auto start = std::chrono::steady_clock::now();
  if (!check(moeq_quantize(weight.dl(), &config, &q, nullptr, 0, nullptr), "moeq_quantize")) return 1;
  const double quantize_seconds = seconds_since(start);
  const int64_t quantized_bytes = layout.packed_bytes + layout.absmax_count * (o.nested ? 1 : 4) +
                                  4 * (layout.nested_absmax_count + layout.nested_code_count + 1);
  std::printf("weights   bf16 %8.1f MiB -> 4-bit %7.1f MiB  (%.2f bits/weight, %.1f%% of bf16), "
              "quantized in %.2f s (%.2f GB/s of bf16 input)\n",
              weight.bytes() / 1048576.0, quantized_bytes / 1048576.0,
              8.0 * quantized_bytes / weight_count, 100.0 * quantized_bytes / weight.bytes(),
              quantize_seconds, weight.bytes() / quantize_seconds / 1e9);

  HostBuffer restored(kFloat32, {E, N, K});
  start = std::chrono::steady_clock::now();
  if (!check(moeq_dequantize(&q, restored.dl(), nullptr), "moeq_dequantize")) return 1;
  const double dequantize_seconds = seconds_since(start);
  double error_sum = 0.0, magnitude_sum = 0.0;
  for (int64_t i = 0; i < weight_count; ++i) {
    const double original = bfloat16_bits_to_float(weight.as<uint16_t>()[i]);
    error_sum += std::fabs(restored.as<float>()[i] - original);
    magnitude_sum += std::fabs(original);
  }
  std::printf("          dequantized in %.2f s; mean |error| / mean |w| = %.4f\n\n", dequantize_seconds,
              error_sum / magnitude_sum);

  // 2. Routed tokens: each token picks top_k distinct experts; rows sorted by expert.
  std::mt19937_64 rng(o.seed);
  std::vector<int64_t> rows_of_expert(static_cast<size_t>(E), 0);
  std::vector<int64_t> experts(static_cast<size_t>(E));
  std::iota(experts.begin(), experts.end(), 0);
  for (int64_t t = 0; t < o.tokens; ++t) {
    std::shuffle(experts.begin(), experts.end(), rng);
    for (int64_t k = 0; k < std::min(o.top_k, E); ++k) ++rows_of_expert[static_cast<size_t>(experts[k])];
  }
  HostBuffer group_end({kDLInt, 64, 1}, {E});
  std::partial_sum(rows_of_expert.begin(), rows_of_expert.end(), group_end.as<int64_t>());
  HostBuffer x(kBFloat16, {rows, K});
  fill_bfloat16(x, rows * K, o.seed + 1, 1.0f);
  HostBuffer lora_a(kFloat32, {E, r, K});
  HostBuffer lora_b(kFloat32, {E, N, r});
  fill_float32(lora_a, E * r * K, o.seed + 2, 1.0f / std::sqrt(static_cast<float>(K)));
  fill_float32(lora_b, E * N * r, o.seed + 3, 0.02f);
  const float lora_scale = 2.0f;
  HostBuffer y(kBFloat16, {rows, N});
  HostBuffer x_lora_a(kFloat32, {rows, r});

  moeq_expert_gemm_args args{};
  args.struct_size = sizeof(args);
  args.x = x.dl();
  args.weight = &q;
  args.weight_layout = MOEQ_LAYOUT_EXPERT_OUT_IN;
  args.group_end = group_end.dl();
  args.lora_a = lora_a.dl();
  args.lora_b = lora_b.dl();
  args.lora_scale = lora_scale;
  args.y = y.dl();
  args.x_lora_a = x_lora_a.dl();
  start = std::chrono::steady_clock::now();
  if (!check(moeq_expert_gemm_lora(&args, nullptr), "moeq_expert_gemm_lora")) return 1;
  const double forward_seconds = seconds_since(start);
  const double forward_flops = 2.0 * rows * K * N + 2.0 * rows * r * (K + N);

  HostBuffer grad_y(kBFloat16, {rows, N});
  fill_bfloat16(grad_y, rows * N, o.seed + 4, 1.0f);
  HostBuffer grad_x(kBFloat16, {rows, K});
  HostBuffer grad_a(kFloat32, {E, r, K});
  HostBuffer grad_b(kFloat32, {E, N, r});
  moeq_expert_gemm_grad_args grad{};
  grad.struct_size = sizeof(grad);
  grad.x = x.dl();
  grad.weight = &q;
  grad.weight_layout = MOEQ_LAYOUT_EXPERT_OUT_IN;
  grad.group_end = group_end.dl();
  grad.lora_a = lora_a.dl();
  grad.lora_b = lora_b.dl();
  grad.lora_scale = lora_scale;
  grad.grad_y = grad_y.dl();
  grad.x_lora_a = x_lora_a.dl();
  grad.grad_x = grad_x.dl();
  grad.grad_lora_a = grad_a.dl();
  grad.grad_lora_b = grad_b.dl();
  start = std::chrono::steady_clock::now();
  if (!check(moeq_expert_gemm_lora_backward(&grad, nullptr), "moeq_expert_gemm_lora_backward")) return 1;
  const double backward_seconds = seconds_since(start);

  // 3. A float64 reference on sampled rows, from the dequantized 4-bit weights.
  std::vector<int64_t> expert_of_row(static_cast<size_t>(rows));
  for (int64_t e = 0, row = 0; e < E; ++e)
    for (; row < group_end.as<int64_t>()[e]; ++row) expert_of_row[static_cast<size_t>(row)] = e;
  std::vector<double> y_value, y_reference, y_bf16_model, dx_value, dx_reference;
  for (int64_t sample = 0; sample < 24; ++sample) {
    const int64_t row = (sample * 7919) % rows;
    const int64_t e = expert_of_row[static_cast<size_t>(row)];
    const auto X = [&](int64_t k) { return (double)bfloat16_bits_to_float(x.as<uint16_t>()[row * K + k]); };
    const auto W = [&](int64_t n, int64_t k) { return (double)restored.as<float>()[(e * N + n) * K + k]; };
    const auto A = [&](int64_t j, int64_t k) { return (double)lora_a.as<float>()[(e * r + j) * K + k]; };
    const auto B = [&](int64_t n, int64_t j) { return (double)lora_b.as<float>()[(e * N + n) * r + j]; };
    const auto DY = [&](int64_t n) { return (double)bfloat16_bits_to_float(grad_y.as<uint16_t>()[row * N + n]); };
    std::vector<double> xa(static_cast<size_t>(r), 0.0), dyb(static_cast<size_t>(r), 0.0);
    for (int64_t j = 0; j < r; ++j)
      for (int64_t k = 0; k < K; ++k) xa[j] += X(k) * A(j, k);
    for (int64_t n = 0; n < N; ++n) {
      double value = 0.0, original = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        value += X(k) * W(n, k);
        original += X(k) * bfloat16_bits_to_float(weight.as<uint16_t>()[(e * N + n) * K + k]);
      }
      double lora = 0.0;
      for (int64_t j = 0; j < r; ++j) lora += xa[j] * B(n, j);
      y_reference.push_back(value + lora_scale * lora);
      y_bf16_model.push_back(original + lora_scale * lora);
      y_value.push_back(bfloat16_bits_to_float(y.as<uint16_t>()[row * N + n]));
    }
    for (int64_t j = 0; j < r; ++j)
      for (int64_t n = 0; n < N; ++n) dyb[j] += DY(n) * B(n, j);
    for (int64_t k = 0; k < K; ++k) {
      double value = 0.0;
      for (int64_t n = 0; n < N; ++n) value += DY(n) * W(n, k);
      for (int64_t j = 0; j < r; ++j) value += lora_scale * dyb[j] * A(j, k);
      dx_reference.push_back(value);
      dx_value.push_back(bfloat16_bits_to_float(grad_x.as<uint16_t>()[row * K + k]));
    }
  }
  const double y_error = relative_error(y_value, y_reference);
  const double dx_error = relative_error(dx_value, dx_reference);
  const double quantization_error = relative_error(y_reference, y_bf16_model);
  std::printf("forward   y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ over %lld rows: %.3f s, %.1f GFLOP/s; "
              "relative error vs float64 reference %.2e\n",
              (long long)rows, forward_seconds, forward_flops / forward_seconds / 1e9, y_error);
  std::printf("backward  dX, dA, dB: %.3f s; dX relative error vs float64 reference %.2e\n",
              backward_seconds, dx_error);
  std::printf("          4-bit vs bf16 weights changes y by %.2e (relative): the quantization error\n\n",
              quantization_error);
  const double saved_gib = (weight.bytes() - quantized_bytes) / 1073741824.0;
  std::printf("memory saved on this one projection: %.2f GiB (%.1fx smaller); on all 47 MoE layers of\n"
              "GLM-4.7-Flash (gate_up + down) that is about %.1f GiB\n",
              saved_gib, static_cast<double>(weight.bytes()) / quantized_bytes, saved_gib * 1.5 * 47);
  // bf16 outputs carry ~2^-9 relative rounding; anything much larger is a bug.
  const bool passed = y_error < 1e-2 && dx_error < 1e-2;
  std::printf("%s\n", passed ? "all checks passed" : "CHECK FAILED: error above 1e-2");
  return passed ? 0 : 1;
}

}  // namespace moeq::cli
