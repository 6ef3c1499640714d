// Shared by the CUDA expert GEMM suites: device copies of host tensors, random
// cases over every combination the GPU path supports, float64 references with an
// elementwise error bound, and the tolerances of the GPU path per dtype.
#pragma once

#include "support/device_tensor.hpp"
#include "support/expert_gemm_case.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace moeq_gpu_test {

using namespace moeq_test;

// The GPU suites skip (and say so) where no GPU is visible, as in CI.
inline bool skip_without_gpu() {
  if (moeq_cuda_available() != 0) return false;
  MESSAGE("no CUDA GPU visible: CUDA expert GEMM test skipped");
  return true;
}

// Random cases to run: MOEQ_GEMM_TEST_CASES overrides (the sanitizer runs use few).
inline int case_count(int default_count) {
  const char* text = std::getenv("MOEQ_GEMM_TEST_CASES");
  return text != nullptr ? std::max(1, std::atoi(text)) : default_count;
}

// Elementwise tolerance, as a multiple of the bound sum |a_i b_i| of each output.
// Each 16-bit operand that is not exact (the dequantized weight, LoRA factors and
// rank-r intermediates) and the stored output are rounded once: <= 4 unit
// roundoffs (bf16 2^-8, f16 2^-11). float32 runs as bf16x3 (hi*hi + hi*lo + lo*hi,
// ~2^-16 per product) plus float32 accumulation.
inline double gpu_tolerance(DLDataType activation) {
  if (same_dtype(activation, bfloat16_type())) return 4 * std::ldexp(1.0, -8);
  if (same_dtype(activation, float16_type())) return 4 * std::ldexp(1.0, -11);
  return 1e-4;
}

// A device copy of a quantized host tensor.
class DeviceQTensor {
 public:
  explicit DeviceQTensor(HostQTensor& host)
      : packed(host.packed), absmax(host.absmax), nested_absmax(host.nested_absmax),
        nested_code(host.nested_code), nested_offset(host.nested_offset), q_(*host.q()) {
    q_.packed = *packed.dl();
    q_.absmax = *absmax.dl();
    if (q_.nested) {
      q_.nested_absmax = *nested_absmax.dl();
      q_.nested_code = *nested_code.dl();
      q_.nested_offset = *nested_offset.dl();
    }
  }
  const moeq_qtensor* q() const { return &q_; }

 private:
  DeviceTensor packed, absmax, nested_absmax, nested_code, nested_offset;
  moeq_qtensor q_;
};

// The workspace a test passes to a call: device memory of the size the library
// asked for, freed with the test's call object.
class CallerWorkspace {
 public:
  CallerWorkspace() = default;
  CallerWorkspace(const CallerWorkspace&) = delete;
  CallerWorkspace& operator=(const CallerWorkspace&) = delete;
  ~CallerWorkspace() {
    if (data_ != nullptr) cudaFree(data_);
  }

  // Allocates `bytes` when `wanted` (and non-zero) and points the call's arguments at it.
  template <class Args>
  void attach(Args& args, size_t bytes, bool wanted) {
    if (!wanted || bytes == 0) return;
    REQUIRE_CUDA(cudaMalloc(&data_, bytes));
    args.workspace = data_;
    args.workspace_bytes = bytes;
  }

 private:
  void* data_ = nullptr;
};

// The inputs of a case on the device.
struct DeviceInputs {
  explicit DeviceInputs(ExpertGemmInputs& in)
      : weight(in.weight), x(in.x), group_end(in.group_end) {
    if (in.spec.rank > 0) {
      lora_a.assign(in.lora_a);
      lora_b.assign(in.lora_b);
    }
  }
  DeviceQTensor weight;
  DeviceTensor x, group_end, lora_a, lora_b;
};

// A random case over everything the GPU path covers: blocksizes 32..4096, both
// layouts, E up to 1024, experts with no rows and with several row tiles, K and N
// multiples of 16 or not, ranks 1..256, strided LoRA factors, padded rows.
// Case i of the training-sized sweep: groups of a mean >= 32 rows, 16-bit
// activations, both weight layouts. On compute capability 9.0 these take the Hopper
// wgmma GEMM: tiles of 256 tokens (the n256 form and the n128 tail form) x 128
// features, partial 64-deep steps, partial feature tiles, experts without rows,
// LoRA ranks across the 64-rank chunks and the LoRA kernels' rank forms, padded rows.
inline ExpertGemmCase training_gpu_case(int i) {
  const std::vector<std::vector<int64_t>> routings = {{300, 0, 129, 1}, {256, 257}, {40, 700}, {128, 0, 0, 140, 33}};
  // 33 and 64: the rank-64 forms of the bandwidth LoRA kernels (lora_rows_*.cuh);
  // the second 16 lands on depths that end inside a 128-deep step of the rank-16
  // projection (96).
  const int64_t ranks[7] = {0, 16, 100, 1, 33, 64, 16};
  ExpertGemmCase c;
  c.layout = i % 4 == 1 ? MOEQ_LAYOUT_EXPERT_IN_OUT : MOEQ_LAYOUT_EXPERT_OUT_IN;
  c.format = i % 2 == 0 ? MOEQ_FORMAT_NF4 : MOEQ_FORMAT_FP4;
  c.nested = i % 4 >= 2;
  c.blocksize = i % 3 == 0 ? 32 : 64 << (i % 3);
  // The stored last dim (a multiple of the blocksize; 96: a half-filled last 64-deep
  // step) and the other one (200: a partial 128-feature tile). Plain absmax rows of
  // four blocks come by TMA; three blocks (and 96) are gathered by the producer.
  const int64_t last_dim = i % 3 == 0 ? 96 : c.blocksize * (c.nested ? 2 + i % 2 : 4);
  const int64_t other_dim = i % 5 == 0 ? 200 : 128 * (1 + i % 3);
  const bool out_in = c.layout == MOEQ_LAYOUT_EXPERT_OUT_IN;
  c.in_features = out_in ? last_dim : other_dim;
  c.out_features = out_in ? other_dim : last_dim;
  c.rank = ranks[i % 7];
  c.rows_per_expert = routings[i % routings.size()];
  c.unrouted_rows = i % 3;
  c.row_padding = i % 4 == 3 ? 8 : 0;
  c.activation = i % 2 == 0 ? bfloat16_type() : float16_type();
  c.lora = i % 3 == 1 ? float32_type() : c.activation;
  c.peft_lora_b = i % 2 == 1;
  c.lora_scale = i % 2 == 0 ? 0.5f : -1.25f;
  return c;
}

// Case i of the decode-sized sweep with deep products: fewer than 32 rows per
// expert (the decode GEMM and projections over 16-row tiles, one or two n8 row
// groups, the [E, K, N] kernel built for one), K and N of 1024..2048 so that both
// the projections and the decode GEMM split their depth over several blocks
// (partial last splits, a partial column tile), both layouts, LoRA factors as 16-byte
// vectors (the activation's dtype) or float32, ranks across the split projection's
// rank forms.
inline ExpertGemmCase decode_gpu_case(int i) {
  // The last three: at most 4 rows per expert on average (the [E, K, N] decode kernel
  // built for one n8 row group) with an expert of 9..16 rows (a tile in two passes)
  // and one of 23 (a 16-row tile in two passes and a 7-row one).
  const std::vector<std::vector<int64_t>> routings = {
      {17, 0, 5, 30}, {1, 2, 3, 8}, {16, 16, 0, 9}, {2, 9, 1, 0}, {1, 0, 2, 1, 3, 14, 1, 2, 0, 1},
      {0, 1, 1, 1, 1, 2, 23, 1}};
  const int64_t ranks[5] = {16, 0, 33, 64, 7};
  ExpertGemmCase c;
  c.layout = i % 2 == 1 ? MOEQ_LAYOUT_EXPERT_IN_OUT : MOEQ_LAYOUT_EXPERT_OUT_IN;
  c.format = i % 3 == 0 ? MOEQ_FORMAT_NF4 : MOEQ_FORMAT_FP4;
  c.nested = i % 4 >= 2;
  c.blocksize = 64 << (i % 2);
  const int64_t last_dim = i % 3 == 2 ? 2048 : 1152;  // 1152: a partial last split
  const int64_t other_dim = i % 2 == 0 ? 1040 : 1536;  // 1040: a partial column tile
  const bool out_in = c.layout == MOEQ_LAYOUT_EXPERT_OUT_IN;
  c.in_features = out_in ? last_dim : other_dim;
  c.out_features = out_in ? other_dim : last_dim;
  c.rank = ranks[i % 5];
  c.rows_per_expert = routings[i % routings.size()];
  c.unrouted_rows = i % 2;
  c.row_padding = i % 3 == 1 ? 8 : 0;
  c.activation = i % 2 == 0 ? bfloat16_type() : float16_type();
  c.lora = i % 4 == 3 ? float32_type() : c.activation;
  c.peft_lora_b = i % 2 == 0;
  c.lora_scale = i % 2 == 0 ? 0.5f : -1.25f;
  return c;
}

inline ExpertGemmCase random_gpu_case(std::mt19937_64& rng) {
  const auto pick = [&](int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(rng);
  };
  const DLDataType activations[3] = {float32_type(), float16_type(), bfloat16_type()};
  ExpertGemmCase c;
  c.format = pick(0, 1) ? MOEQ_FORMAT_NF4 : MOEQ_FORMAT_FP4;
  c.nested = pick(0, 1) == 1;
  c.layout = pick(0, 1) ? MOEQ_LAYOUT_EXPERT_OUT_IN : MOEQ_LAYOUT_EXPERT_IN_OUT;
  const int64_t size_class = pick(0, 19);  // 0: 1024 experts, 1..2: many, else few
  const int64_t experts = size_class == 0 ? 1024 : size_class <= 2 ? pick(13, 80) : pick(1, 12);
  c.blocksize = static_cast<int32_t>(32 << pick(0, experts > 80 ? 1 : 7));
  const int64_t last_dim = c.blocksize * pick(1, std::max<int64_t>(1, 384 / c.blocksize));
  const int64_t other_dim =
      experts > 80 ? 16 * pick(1, 3) : (pick(0, 9) < 7 ? 16 * pick(1, 20) : pick(1, 200));
  const bool out_in = c.layout == MOEQ_LAYOUT_EXPERT_OUT_IN;
  c.in_features = out_in ? last_dim : other_dim;
  c.out_features = out_in ? other_dim : last_dim;
  const int64_t ranks[9] = {0, 1, 3, 8, 16, 17, 64, 100, 256};
  c.rank = ranks[pick(0, 8)];
  c.rows_per_expert.assign(static_cast<size_t>(experts), 0);
  for (int64_t& count : c.rows_per_expert) {
    const int64_t kind = pick(0, 19);
    count = experts > 80 ? pick(0, 3) : kind < 5 ? 0 : kind < 17 ? pick(1, 40) : pick(65, 200);
  }
  // Keep the float64 reference quick: at most ~3e7 multiply-adds per product.
  const int64_t budget = 30000000 / (c.in_features * std::max<int64_t>(c.out_features, c.rank));
  for (int64_t& count : c.rows_per_expert)
    count = std::min<int64_t>(count, std::max<int64_t>(1, budget / experts));
  c.unrouted_rows = pick(0, 5);
  const int64_t paddings[3] = {0, 3, 8};
  c.row_padding = paddings[pick(0, 2)];
  c.activation = activations[pick(0, 2)];
  c.lora = pick(0, 1) ? float32_type() : c.activation;
  c.peft_lora_b = pick(0, 1) == 1;
  c.group_end_int64 = pick(0, 1) == 1;
  const float scales[3] = {0.5f, 2.0f, -1.25f};
  c.lora_scale = scales[pick(0, 2)];
  return c;
}

// The worst (|actual - expected| / bound) over the elements and the relative
// Frobenius error; an element with bound 0 must be exactly 0; NaN never passes.
struct Agreement {
  double worst_ratio = 0.0;
  double relative_error = 0.0;
  int64_t failures = 0;
  std::string first_failure;
};

template <class Value>
Agreement compare(const Reference& expected, double tolerance, Value&& actual_at) {
  Agreement agreement;
  double difference = 0.0, norm = 0.0;
  for (size_t i = 0; i < expected.value.size(); ++i) {
    const double actual = actual_at(static_cast<int64_t>(i));
    const double error = std::fabs(actual - expected.value[i]);
    difference += error * error;
    norm += expected.value[i] * expected.value[i];
    const double ratio = expected.bound[i] > 0 ? error / expected.bound[i] : (error == 0 ? 0 : INFINITY);
    if (!(ratio <= tolerance)) {
      if (agreement.failures++ == 0)
        agreement.first_failure = "element " + std::to_string(i) + ": got " + std::to_string(actual) +
                                  ", expected " + std::to_string(expected.value[i]) + " (bound " +
                                  std::to_string(expected.bound[i]) + ")";
    }
    if (!(ratio <= agreement.worst_ratio)) agreement.worst_ratio = ratio;
  }
  agreement.relative_error = norm > 0 ? std::sqrt(difference / norm) : std::sqrt(difference);
  return agreement;
}

// Element (i, j) of the first rows of a [M, cols] matrix, flattened as i * cols + j.
inline Agreement compare_matrix(const Reference& expected, double tolerance, const HostTensor& actual,
                                int64_t cols) {
  return compare(expected, tolerance,
                 [&](int64_t index) { return actual.at({index / cols, index % cols}); });
}

// Element (e, i, j) of a [E, rows, cols] stack, flattened as (e * rows + i) * cols + j.
inline Agreement compare_stack(const Reference& expected, double tolerance, const HostTensor& actual,
                               int64_t rows, int64_t cols) {
  return compare(expected, tolerance, [&](int64_t index) {
    return actual.at({index / (rows * cols), index / cols % rows, index % cols});
  });
}

// The worst agreement seen per dtype, printed at the end of a sweep.
class SweepReport {
 public:
  void add(const std::string& what, DLDataType dtype, const Agreement& agreement) {
    Entry& entry = entries_[what + " " + dtype_label(dtype)];
    entry.worst_ratio = std::max(entry.worst_ratio, agreement.worst_ratio);
    entry.relative_error = std::max(entry.relative_error, agreement.relative_error);
    entry.tolerance = gpu_tolerance(dtype);
    ++entry.count;
  }
  void print(const std::string& title) const {
    std::string text = title + ": worst |error| / sum|terms| (tolerance), worst relative Frobenius error";
    for (const auto& [name, entry] : entries_)
      text += "\n  " + name + ": " + std::to_string(entry.count) + " outputs, " +
              std::to_string(entry.worst_ratio) + " (" + std::to_string(entry.tolerance) + "), " +
              std::to_string(entry.relative_error);
    MESSAGE(text);
  }

 private:
  struct Entry {
    double worst_ratio = 0, relative_error = 0, tolerance = 0;
    int count = 0;
  };
  std::map<std::string, Entry> entries_;
};

// An output of routed rows (y, x_lora_a, grad_x: [rows, cols]) against float64 within
// `tolerance`, reported under `name` where a report is given, and its rows past the
// routed ones still holding the poison.
inline void check_routed_rows(const std::string& name, const Reference& expected, double tolerance,
                              HostTensor& actual, const ExpertGemmCase& spec, int64_t cols, SweepReport* report) {
  const Agreement agreement = compare_matrix(expected, tolerance, actual, cols);
  CHECK_MESSAGE(agreement.failures == 0, (name + " " + agreement.first_failure));
  if (report) report->add(name, spec.activation, agreement);
  const PoisonCount untouched = untouched_elements(actual, spec.routed_rows());
  CHECK(untouched.poisoned == untouched.total);
}

// Cases 0 .. n - 1 of a fixed sweep (make_case(i)), their inputs drawn in turn from one
// seeded generator; check(i, spec, inputs, rng, report) runs the case and checks it
// against float64 and the CPU backend. The report says how close each output came.
template <class MakeCase, class Check>
void run_fixed_sweep(const std::string& name, uint64_t seed, int default_count, MakeCase make_case, Check check) {
  std::mt19937_64 rng(seed);
  SweepReport report;
  const int cases = case_count(default_count);
  for (int i = 0; i < cases; ++i) {
    const ExpertGemmCase spec = make_case(i);
    CAPTURE(i);
    CAPTURE(spec.describe());
    ExpertGemmInputs in(spec, rng);
    check(i, spec, in, rng, report);
  }
  report.print(name + ", " + std::to_string(cases) + " cases, all also compared with the CPU backend");
}

}  // namespace moeq_gpu_test
