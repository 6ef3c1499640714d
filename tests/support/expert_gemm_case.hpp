// Random expert GEMM problems for the CPU and GPU tests, and their float64
// references computed with plain loops (the 4-bit weight comes from moeq_dequantize).
#pragma once

#include "support/host_tensor.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <cmath>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace moeq_test {

inline bool same_dtype(DLDataType a, DLDataType b) {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

inline const char* dtype_label(DLDataType dtype) {
  if (same_dtype(dtype, float16_type())) return "float16";
  if (same_dtype(dtype, bfloat16_type())) return "bfloat16";
  return "float32";
}

inline std::vector<DLDataType> activation_types() {
  return {float32_type(), float16_type(), bfloat16_type()};
}

// Relative Frobenius error allowed for an output stored in `dtype`. Each stored
// element is the float32 result rounded once, so |stored - exact| <= u |exact| + the
// float32 accumulation error, and the norm of the difference is at most u (the
// unit roundoff: 2^-24, 2^-11, 2^-8) plus that accumulation error, which is below
// 1e-5 for the sums of at most a few hundred terms in these tests.
inline double output_tolerance(DLDataType dtype) {
  constexpr double kFloat32Accumulation = 1e-5;
  if (same_dtype(dtype, float16_type())) return std::ldexp(1.0, -11) + kFloat32Accumulation;
  if (same_dtype(dtype, bfloat16_type())) return std::ldexp(1.0, -8) + kFloat32Accumulation;
  return kFloat32Accumulation;
}

// What one problem looks like; random_case draws one.
struct ExpertGemmCase {
  int32_t format = MOEQ_FORMAT_NF4;
  int32_t blocksize = 64;
  bool nested = false;
  int32_t layout = MOEQ_LAYOUT_EXPERT_OUT_IN;
  int64_t in_features = 64;   // K
  int64_t out_features = 64;  // N
  int64_t rank = 0;           // 0: no LoRA
  std::vector<int64_t> rows_per_expert = {8};
  int64_t unrouted_rows = 0;  // rows of x and y past the last group_end
  int64_t row_padding = 0;    // row stride of x, y, grad_y, grad_x = columns + padding
  DLDataType activation = float32_type();
  DLDataType lora = float32_type();
  bool peft_lora_b = false;  // lora_b as PEFT's view [E, N, r], strides (1, r*E, E)
  bool group_end_int64 = false;
  float lora_scale = 0.5f;

  int64_t experts() const { return static_cast<int64_t>(rows_per_expert.size()); }
  int64_t routed_rows() const {
    int64_t rows = 0;
    for (int64_t count : rows_per_expert) rows += count;
    return rows;
  }
  int64_t rows() const { return routed_rows() + unrouted_rows; }
  std::vector<int64_t> weight_shape() const {
    return layout == MOEQ_LAYOUT_EXPERT_OUT_IN
               ? std::vector<int64_t>{experts(), out_features, in_features}
               : std::vector<int64_t>{experts(), in_features, out_features};
  }
  std::string describe() const {
    std::ostringstream text;
    text << (format == MOEQ_FORMAT_NF4 ? "nf4" : "fp4") << " bs" << blocksize
         << (nested ? " nested" : " plain")
         << (layout == MOEQ_LAYOUT_EXPERT_OUT_IN ? " [E,N,K]" : " [E,K,N]") << " E=" << experts()
         << " K=" << in_features << " N=" << out_features << " r=" << rank << " rows={";
    for (int64_t count : rows_per_expert) text << count << ",";
    text << "} +" << unrouted_rows << " unrouted, pad " << row_padding << ", x "
         << dtype_label(activation) << ", lora " << dtype_label(lora)
         << (peft_lora_b ? ", PEFT lora_b" : "") << (group_end_int64 ? ", int64" : ", int32")
         << " group_end";
    return text.str();
  }
};

// One case per weight layout x format x plain/nested, blocksize 32: the stored last
// dim is `last_dim` (a multiple of 32), the other one `other_dim`.
inline std::vector<ExpertGemmCase> every_layout_and_format(int64_t last_dim, int64_t other_dim,
                                                           int64_t rank) {
  std::vector<ExpertGemmCase> cases;
  for (int32_t layout : {MOEQ_LAYOUT_EXPERT_OUT_IN, MOEQ_LAYOUT_EXPERT_IN_OUT})
    for (int32_t format : {MOEQ_FORMAT_NF4, MOEQ_FORMAT_FP4})
      for (bool nested : {false, true}) {
        ExpertGemmCase spec;
        spec.layout = layout;
        spec.format = format;
        spec.nested = nested;
        spec.blocksize = 32;
        const bool out_in = layout == MOEQ_LAYOUT_EXPERT_OUT_IN;
        spec.in_features = out_in ? last_dim : other_dim;
        spec.out_features = out_in ? other_dim : last_dim;
        spec.rows_per_expert = {9, 14};
        spec.rank = rank;
        cases.push_back(spec);
      }
  return cases;
}

// A random case: the stored last dim is a multiple of the blocksize (the GEMM
// requires it), the other dims are arbitrary, often not multiples of 16.
inline ExpertGemmCase random_case(std::mt19937_64& rng) {
  const auto pick = [&](int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(rng);
  };
  const std::vector<DLDataType> activations = activation_types();
  ExpertGemmCase c;
  c.format = pick(0, 1) ? MOEQ_FORMAT_NF4 : MOEQ_FORMAT_FP4;
  c.blocksize = static_cast<int32_t>(32 << pick(0, 2));
  c.nested = pick(0, 1) == 1;
  c.layout = pick(0, 1) ? MOEQ_LAYOUT_EXPERT_OUT_IN : MOEQ_LAYOUT_EXPERT_IN_OUT;
  const int64_t last_dim = c.blocksize * pick(1, 3);
  const int64_t other_dim = pick(1, 150);
  const bool out_in = c.layout == MOEQ_LAYOUT_EXPERT_OUT_IN;
  c.in_features = out_in ? last_dim : other_dim;
  c.out_features = out_in ? other_dim : last_dim;
  const int64_t ranks[5] = {0, 1, 4, 7, 16};
  c.rank = ranks[pick(0, 4)];
  c.rows_per_expert.assign(static_cast<size_t>(pick(1, 9)), 0);
  for (int64_t& count : c.rows_per_expert) count = pick(0, 3) == 0 ? 0 : pick(1, 40);
  c.unrouted_rows = pick(0, 5);
  c.row_padding = pick(0, 1) * 3;
  c.activation = activations[pick(0, 2)];
  c.lora = pick(0, 1) ? float32_type() : c.activation;
  c.peft_lora_b = pick(0, 1) == 1;
  c.group_end_int64 = pick(0, 1) == 1;
  return c;
}

// Dense float64 copy of a [rows, cols] matrix or [E, rows, cols] stack read
// through the tensor's strides.
inline std::vector<double> dense_values(const HostTensor& tensor) {
  const std::vector<int64_t>& shape = tensor.shape();
  std::vector<double> values;
  values.reserve(static_cast<size_t>(tensor.numel()));
  if (shape.size() == 2) {
    for (int64_t i = 0; i < shape[0]; ++i)
      for (int64_t j = 0; j < shape[1]; ++j) values.push_back(tensor.at({i, j}));
  } else {
    for (int64_t e = 0; e < shape[0]; ++e)
      for (int64_t i = 0; i < shape[1]; ++i)
        for (int64_t j = 0; j < shape[2]; ++j) values.push_back(tensor.at({e, i, j}));
  }
  return values;
}

// A row-major [rows, cols] activation with `padding` extra elements per row.
inline HostTensor activation_tensor(DLDataType dtype, int64_t rows, int64_t cols, int64_t padding) {
  if (padding == 0) return HostTensor(dtype, {rows, cols});
  return HostTensor(dtype, {rows, cols}, {cols + padding, 1});
}

// A stack [E, N, r] either contiguous or as PEFT's view of lora_B.weight [N, r*E].
inline HostTensor lora_b_tensor(DLDataType dtype, int64_t experts, int64_t out_features,
                                int64_t rank, bool peft) {
  if (!peft) return HostTensor(dtype, {experts, out_features, rank});
  return HostTensor(dtype, {experts, out_features, rank}, {1, rank * experts, experts});
}

// Every input of one case, filled from the seeded generator.
class ExpertGemmInputs {
 public:
  ExpertGemmInputs(const ExpertGemmCase& spec, std::mt19937_64& rng)
      : spec(spec),
        weight(spec.format, spec.blocksize, spec.nested, spec.weight_shape(), float32_type()) {
    HostTensor source(float32_type(), spec.weight_shape());
    source.fill_normal(rng);
    quantize_into(source, weight);
    HostTensor dequantized(float32_type(), spec.weight_shape());
    REQUIRE(moeq_dequantize(weight.q(), dequantized.dl(), nullptr) == MOEQ_OK);
    weight_values = dense_values(dequantized);

    x = activation_tensor(spec.activation, spec.rows(), spec.in_features, spec.row_padding);
    x.fill_normal(rng);
    x_values = dense_values(x);
    group_end = HostTensor(spec.group_end_int64 ? int64_type() : int32_type(), {spec.experts()});
    int64_t end = 0;
    for (int64_t e = 0; e < spec.experts(); ++e) {
      end += spec.rows_per_expert[e];
      group_end.set_flat(e, static_cast<double>(end));
    }
    if (spec.rank > 0) {
      lora_a = HostTensor(spec.lora, {spec.experts(), spec.rank, spec.in_features});
      lora_a.fill_normal(rng);
      lora_b =
          lora_b_tensor(spec.lora, spec.experts(), spec.out_features, spec.rank, spec.peft_lora_b);
      lora_b.fill_normal(rng);
      a_values = dense_values(lora_a);
      b_values = dense_values(lora_b);
    }
  }
  ExpertGemmInputs(const ExpertGemmInputs&) = delete;
  ExpertGemmInputs& operator=(const ExpertGemmInputs&) = delete;

  int64_t begin(int64_t expert) const {
    int64_t row = 0;
    for (int64_t e = 0; e < expert; ++e) row += spec.rows_per_expert[e];
    return row;
  }
  // W_e[n, k] of the dequantized weight, whatever the layout.
  double w(int64_t e, int64_t n, int64_t k) const {
    const int64_t n_count = spec.out_features, k_count = spec.in_features;
    return spec.layout == MOEQ_LAYOUT_EXPERT_OUT_IN
               ? weight_values[(e * n_count + n) * k_count + k]
               : weight_values[(e * k_count + k) * n_count + n];
  }
  double a(int64_t e, int64_t j, int64_t k) const {
    return a_values[(e * spec.rank + j) * spec.in_features + k];
  }
  double b(int64_t e, int64_t n, int64_t j) const {
    return b_values[(e * spec.out_features + n) * spec.rank + j];
  }

  const DLTensor* lora_a_dl() const { return spec.rank > 0 ? lora_a.dl() : nullptr; }
  const DLTensor* lora_b_dl() const { return spec.rank > 0 ? lora_b.dl() : nullptr; }

  ExpertGemmCase spec;
  HostQTensor weight;
  std::vector<double> weight_values, x_values, a_values, b_values;
  HostTensor x, group_end, lora_a, lora_b;
};

// The forward's or the backward's argument struct with the fields they share set
// from a case's inputs (x, the weight, the routing, LoRA).
template <class Args>
Args args_over_inputs(ExpertGemmInputs& in) {
  Args args{};
  args.struct_size = sizeof(args);
  args.x = in.x.dl();
  args.weight = in.weight.q();
  args.weight_layout = in.spec.layout;
  args.group_end = in.group_end.dl();
  args.lora_a = in.lora_a_dl();
  args.lora_b = in.lora_b_dl();
  args.lora_scale = in.spec.lora_scale;
  return args;
}

// The forward's arguments over a case's inputs, writing y (and x_lora_a when given).
inline moeq_expert_gemm_args forward_args(ExpertGemmInputs& in, DLTensor* y,
                                          DLTensor* x_lora_a = nullptr) {
  auto args = args_over_inputs<moeq_expert_gemm_args>(in);
  args.y = y;
  args.x_lora_a = x_lora_a;
  return args;
}

// The backward's arguments over a case's inputs and grad_y, from x (no saved
// x_lora_a), writing the gradients given (NULL: not asked for).
inline moeq_expert_gemm_grad_args backward_args(ExpertGemmInputs& in, const DLTensor* grad_y,
                                                DLTensor* grad_x, DLTensor* grad_lora_a,
                                                DLTensor* grad_lora_b) {
  auto args = args_over_inputs<moeq_expert_gemm_grad_args>(in);
  args.grad_y = grad_y;
  args.grad_x = grad_x;
  args.grad_lora_a = grad_lora_a;
  args.grad_lora_b = grad_lora_b;
  return args;
}

// ---------------------------------------------------------------- references

// A float64 result and, per element, the bound sum |terms| that its rounding
// error is measured against (the GPU tests compare elementwise against it; the
// CPU tests take `value` and a relative Frobenius error).
struct Reference {
  std::vector<double> value, bound;
  void resize(size_t count) {
    value.assign(count, 0.0);
    bound.assign(count, 0.0);
  }
};

// The row product every float64 reference here is made of, for o < outputs:
//   value[o] = sum_d left[d] dense(o, d) + scale sum_j projected[j] factor(o, j)
// and bound[o] the same sums of |terms|, with the projected row's own bounds in place
// of |projected[j]| (it is itself a rounded intermediate). rank 0: the dense sum alone.
template <class Dense, class Factor>
inline void reference_row(int64_t outputs, int64_t depth, const double* left, Dense dense, int64_t rank,
                          double scale, const double* projected, const double* projected_bound, Factor factor,
                          double* value, double* bound) {
  for (int64_t o = 0; o < outputs; ++o) {
    double sum = 0.0, sum_bound = 0.0;
    for (int64_t d = 0; d < depth; ++d) {
      const double term = left[d] * dense(o, d);
      sum += term;
      sum_bound += std::fabs(term);
    }
    for (int64_t j = 0; j < rank; ++j) {
      sum += scale * projected[j] * factor(o, j);
      sum_bound += std::fabs(scale * factor(o, j)) * projected_bound[j];
    }
    value[o] = sum;
    bound[o] = sum_bound;
  }
}
template <class Dense>
inline void reference_row(int64_t outputs, int64_t depth, const double* left, Dense dense, double* value,
                          double* bound) {
  reference_row(outputs, depth, left, dense, 0, 0.0, nullptr, nullptr, [](int64_t, int64_t) { return 0.0; },
                value, bound);
}

// Row m (routed to expert e) of x · A_eᵀ: value[j] and its bound sum |terms|, j < r.
inline void reference_x_lora_a_row(const ExpertGemmInputs& in, int64_t e, int64_t m, double* value,
                                   double* bound) {
  const ExpertGemmCase& c = in.spec;
  reference_row(c.rank, c.in_features, in.x_values.data() + m * c.in_features,
                [&](int64_t j, int64_t k) { return in.a(e, j, k); }, value, bound);
}

// Row m (routed to expert e) of y = x · W_eᵀ + s · (x · A_eᵀ) · B_eᵀ, given that row
// of x · A_eᵀ with its bounds: value[n] and bound[n], n < N.
inline void reference_y_row(const ExpertGemmInputs& in, int64_t e, int64_t m, const double* projected,
                            const double* projected_bound, double* value, double* bound) {
  const ExpertGemmCase& c = in.spec;
  reference_row(c.out_features, c.in_features, in.x_values.data() + m * c.in_features,
                [&](int64_t n, int64_t k) { return in.w(e, n, k); }, c.rank, c.lora_scale, projected,
                projected_bound, [&](int64_t n, int64_t j) { return in.b(e, n, j); }, value, bound);
}

inline Reference reference_x_lora_a(const ExpertGemmInputs& in) {
  const ExpertGemmCase& c = in.spec;
  Reference out;
  out.resize(static_cast<size_t>(c.routed_rows() * c.rank));
  for (int64_t e = 0; e < c.experts(); ++e)
    for (int64_t m = in.begin(e); m < in.begin(e) + c.rows_per_expert[e]; ++m)
      reference_x_lora_a_row(in, e, m, out.value.data() + m * c.rank, out.bound.data() + m * c.rank);
  return out;
}

// y_e = x_e · W_eᵀ + s · (x_e · A_eᵀ) · B_eᵀ for every routed row: [routed, N].
inline Reference reference_forward(const ExpertGemmInputs& in) {
  const ExpertGemmCase& c = in.spec;
  const Reference projected = reference_x_lora_a(in);
  Reference y;
  y.resize(static_cast<size_t>(c.routed_rows() * c.out_features));
  for (int64_t e = 0; e < c.experts(); ++e)
    for (int64_t m = in.begin(e); m < in.begin(e) + c.rows_per_expert[e]; ++m)
      reference_y_row(in, e, m, projected.value.data() + m * c.rank, projected.bound.data() + m * c.rank,
                      y.value.data() + m * c.out_features, y.bound.data() + m * c.out_features);
  return y;
}

// ---------------------------------------------------------------- comparisons

// ||actual - expected|| / ||expected||, or ||actual|| when the reference is all zero.
inline double relative_error(const std::vector<double>& actual,
                             const std::vector<double>& expected) {
  double difference = 0.0, reference = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    difference += (actual[i] - expected[i]) * (actual[i] - expected[i]);
    reference += expected[i] * expected[i];
  }
  return reference == 0.0 ? std::sqrt(difference) : std::sqrt(difference / reference);
}

// The same over the first `rows` rows of a [M, cols] matrix.
inline double relative_error(const HostTensor& actual, const std::vector<double>& expected,
                             int64_t rows, int64_t cols) {
  std::vector<double> values;
  values.reserve(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) values.push_back(actual.at({i, j}));
  return relative_error(values, expected);
}

// The bytes of element (i, j) of a matrix are still the 0xFF poison.
inline bool poisoned(HostTensor& matrix, int64_t i, int64_t j) {
  const DLTensor* dl = matrix.dl();
  const int64_t row_stride = dl->strides ? dl->strides[0] : dl->shape[1];
  const int64_t bytes = dl->dtype.bits / 8;
  const uint8_t* element = matrix.bytes().data() + (i * row_stride + j) * bytes;
  for (int64_t b = 0; b < bytes; ++b)
    if (element[b] != 0xFF) return false;
  return true;
}

// Elements of rows [first_row, rows) and of the row padding still poisoned, out of
// how many there are: both counts equal when the call left them untouched.
struct PoisonCount {
  int64_t poisoned = 0;
  int64_t total = 0;
};
inline PoisonCount untouched_elements(HostTensor& matrix, int64_t first_row) {
  const DLTensor* dl = matrix.dl();
  const int64_t rows = dl->shape[0], cols = dl->shape[1];
  const int64_t row_stride = dl->strides ? dl->strides[0] : cols;
  PoisonCount count;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = i < first_row ? cols : 0; j < (i + 1 < rows ? row_stride : cols); ++j) {
      ++count.total;
      count.poisoned += poisoned(matrix, i, j) ? 1 : 0;
    }
  return count;
}

}  // namespace moeq_test
