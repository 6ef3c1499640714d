// CPU gated activation (SwiGLU), forward and backward: per element in float32
// (core/swiglu_math.hpp), rounded once; threaded over rows.
#include "core/backend.hpp"
#include "core/swiglu_math.hpp"
#include "cpu/parallel.hpp"

namespace moeq::cpu {
namespace {

// Calls body(gate_up row, row index) for every row, threaded: about 20 operations
// an element (an exponential, a division, two roundings).
template <class T, class Body>
void for_each_row(const SwigluProblem& problem, Body&& body) {
  const int threads =
      threads_for(20.0 * static_cast<double>(problem.rows) * static_cast<double>(problem.cols), problem.rows);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t m = 0; m < problem.rows; ++m)
    body(static_cast<const T*>(problem.gate_up.data) + m * problem.gate_up.stride[0], m);
}

template <class T>
T* row_of(const StridedTensor& matrix, int64_t row) {
  return static_cast<T*>(matrix.data) + row * matrix.stride[0];
}

template <class T>
void forward_rows(const SwigluProblem& problem) {
  const SwigluParams& p = problem.params;
  const int64_t cols = problem.cols;
  for_each_row<T>(problem, [&](const T* gate_up, int64_t m) {
    T* out = row_of<T>(problem.out, m);
    for (int64_t i = 0; i < cols; ++i)
      out[i] = from_float<T>(swiglu_value(to_float(gate_up[gate_column(i, p.interleaved)]),
                                          to_float(gate_up[up_column(i, cols, p.interleaved)]), p));
  });
}

template <class T>
void backward_rows(const SwigluProblem& problem) {
  const SwigluParams& p = problem.params;
  const int64_t cols = problem.cols;
  for_each_row<T>(problem, [&](const T* gate_up, int64_t m) {
    const T* grad_out = row_of<T>(problem.grad_out, m);
    T* grad_gate_up = row_of<T>(problem.grad_gate_up, m);
    for (int64_t i = 0; i < cols; ++i) {
      const int64_t gate = gate_column(i, p.interleaved), up = up_column(i, cols, p.interleaved);
      const SwigluGradient gradient =
          swiglu_gradient(to_float(gate_up[gate]), to_float(gate_up[up]), to_float(grad_out[i]), p);
      grad_gate_up[gate] = from_float<T>(gradient.gate);
      grad_gate_up[up] = from_float<T>(gradient.up);
    }
  });
}

}  // namespace

void swiglu(const SwigluProblem& problem) {
  dispatch_scalar(problem.type, [&](auto tag) { forward_rows<decltype(tag)>(problem); });
}

void swiglu_backward(const SwigluProblem& problem) {
  dispatch_scalar(problem.type, [&](auto tag) { backward_rows<decltype(tag)>(problem); });
}

}  // namespace moeq::cpu
