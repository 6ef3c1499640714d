// CUDA gated activation (SwiGLU), forward and backward: a grid-stride pass over
// vectors of 8 outputs per thread, each element computed in float32 by
// core/swiglu_math.hpp (the CPU backend's arithmetic) and rounded once. Memory-bound:
// 16-byte accesses where every tensor's rows are aligned whole vectors, element-wise
// guarded accesses otherwise (and for a row's last partial vector).
#include "chained_launch.cuh"
#include "core/backend.hpp"
#include "core/swiglu_math.hpp"
#include "cuda_check.cuh"
#include "launch_grid.cuh"
#include "vector_io.cuh"

#include <algorithm>

namespace moeq::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
struct SwigluArgs {
  SwigluParams params;
  int64_t rows, cols, vectors_per_row;
  const T* gate_up;
  int64_t gate_up_stride;
  T* out;  // forward
  int64_t out_stride;
  const T* grad_out;  // backward
  int64_t grad_out_stride;
  T* grad_gate_up;  // backward
  int64_t grad_gate_up_stride;
};

template <bool kAligned, class T>
__device__ __forceinline__ void load_floats(const T* source, int64_t valid, float (&values)[kVectorElements]) {
  if (kAligned && valid >= kVectorElements) to_floats(load_vector<CacheHint::Default>(source), values);
  else to_floats(load_vector_guarded(source, valid), values);
}

template <bool kAligned, class T>
__device__ __forceinline__ void store_floats(T* destination, int64_t valid, const float (&values)[kVectorElements]) {
  if (kAligned && valid >= kVectorElements) store_vector<CacheHint::Default>(destination, from_floats<T>(values));
  else store_vector_guarded(destination, from_floats<T>(values), valid);
}

// Gate and up of outputs i0 .. i0 + 7 of a row (`valid` of them inside it).
template <bool kInterleaved, bool kAligned, class T>
__device__ __forceinline__ void load_gate_up(const T* row, int64_t cols, int64_t i0, int64_t valid,
                                             float (&gate)[kVectorElements], float (&up)[kVectorElements]) {
  if constexpr (kInterleaved) {
    float pairs[2][kVectorElements];  // gate, up, gate, up, ... from column 2 * i0
    load_floats<kAligned>(row + 2 * i0, 2 * valid, pairs[0]);
    load_floats<kAligned>(row + 2 * i0 + kVectorElements, 2 * valid - kVectorElements, pairs[1]);
#pragma unroll
    for (int j = 0; j < kVectorElements; ++j) {
      gate[j] = pairs[j / 4][(2 * j) % kVectorElements];
      up[j] = pairs[j / 4][(2 * j) % kVectorElements + 1];
    }
  } else {
    load_floats<kAligned>(row + i0, valid, gate);
    load_floats<kAligned>(row + cols + i0, valid, up);
  }
}

// The inverse of load_gate_up: values for gate and up of outputs i0 .. i0 + 7 into
// their columns of a [2I] row.
template <bool kInterleaved, bool kAligned, class T>
__device__ __forceinline__ void store_gate_up(T* row, int64_t cols, int64_t i0, int64_t valid,
                                              const float (&gate)[kVectorElements], const float (&up)[kVectorElements]) {
  if constexpr (kInterleaved) {
    float pairs[2][kVectorElements];
#pragma unroll
    for (int j = 0; j < kVectorElements; ++j) {
      pairs[j / 4][(2 * j) % kVectorElements] = gate[j];
      pairs[j / 4][(2 * j) % kVectorElements + 1] = up[j];
    }
    store_floats<kAligned>(row + 2 * i0, 2 * valid, pairs[0]);
    store_floats<kAligned>(row + 2 * i0 + kVectorElements, 2 * valid - kVectorElements, pairs[1]);
  } else {
    store_floats<kAligned>(row + i0, valid, gate);
    store_floats<kAligned>(row + cols + i0, valid, up);
  }
}

// Calls body(row, i0, valid) for each vector of 8 outputs (i0 .. i0 + 7 of `row`,
// `valid` of them inside it) this thread takes in the grid-stride pass.
template <class T, class Body>
__device__ __forceinline__ void for_each_vector(const SwigluArgs<T>& args, Body&& body) {
  const int64_t vectors = args.rows * args.vectors_per_row;
  for (int64_t v = blockIdx.x * int64_t{kThreads} + threadIdx.x; v < vectors; v += int64_t{gridDim.x} * kThreads) {
    const int64_t row = v / args.vectors_per_row;
    const int64_t i0 = (v % args.vectors_per_row) * kVectorElements;
    body(row, i0, std::min<int64_t>(kVectorElements, args.cols - i0));
  }
}

template <class T, bool kInterleaved, bool kAligned>
__global__ void __launch_bounds__(kThreads) swiglu_kernel(const SwigluArgs<T> args) {
  enter_chained_kernel();
  for_each_vector(args, [&](int64_t row, int64_t i0, int64_t valid) {
    float gate[kVectorElements], up[kVectorElements], out[kVectorElements];
    load_gate_up<kInterleaved, kAligned>(args.gate_up + row * args.gate_up_stride, args.cols, i0, valid, gate, up);
#pragma unroll
    for (int j = 0; j < kVectorElements; ++j) out[j] = swiglu_value(gate[j], up[j], args.params);
    store_floats<kAligned>(args.out + row * args.out_stride + i0, valid, out);
  });
}

template <class T, bool kInterleaved, bool kAligned>
__global__ void __launch_bounds__(kThreads) swiglu_backward_kernel(const SwigluArgs<T> args) {
  enter_chained_kernel();
  for_each_vector(args, [&](int64_t row, int64_t i0, int64_t valid) {
    float gate[kVectorElements], up[kVectorElements], grad[kVectorElements];
    load_gate_up<kInterleaved, kAligned>(args.gate_up + row * args.gate_up_stride, args.cols, i0, valid, gate, up);
    load_floats<kAligned>(args.grad_out + row * args.grad_out_stride + i0, valid, grad);
    float grad_gate[kVectorElements], grad_up[kVectorElements];
#pragma unroll
    for (int j = 0; j < kVectorElements; ++j) {
      const SwigluGradient g = swiglu_gradient(gate[j], up[j], grad[j], args.params);
      grad_gate[j] = g.gate;
      grad_up[j] = g.up;
    }
    store_gate_up<kInterleaved, kAligned>(args.grad_gate_up + row * args.grad_gate_up_stride, args.cols, i0, valid,
                                          grad_gate, grad_up);
  });
}

// Whole 16-byte vectors everywhere: every tensor 16-byte aligned, its row stride
// and the column count whole vectors (so up's half starts on one too).
bool rows_are_vectors(const SwigluProblem& problem, const StridedTensor& a, const StridedTensor& b,
                      const StridedTensor& c) {
  auto fits = [&](const StridedTensor& t) {
    return t.data == nullptr || (is_aligned(t.data, 16) && t.stride[0] % kVectorElements == 0);
  };
  return problem.cols % kVectorElements == 0 && fits(a) && fits(b) && fits(c);
}

template <bool kBackward, class T, bool kInterleaved, bool kAligned>
void launch_as(const SwigluArgs<T>& args, cudaStream_t stream) {
  constexpr auto kernel = kBackward ? swiglu_backward_kernel<T, kInterleaved, kAligned>
                                    : swiglu_kernel<T, kInterleaved, kAligned>;
  const int64_t vectors = args.rows * args.vectors_per_row;
  launch_chained(kernel, persistent_grid<kernel>(kThreads, (vectors + kThreads - 1) / kThreads), kThreads, 0, stream,
                 kBackward ? "swiglu_backward_kernel" : "swiglu_kernel", args);
}

template <bool kBackward>
void launch(const SwigluProblem& problem, void* stream_handle) {
  DeviceGuard guard(problem.device_id);
  const bool aligned = rows_are_vectors(problem, problem.gate_up, kBackward ? problem.grad_out : problem.out,
                                        problem.grad_gate_up);
  dispatch_scalar(problem.type, [&](auto tag) {
    using T = decltype(tag);
    SwigluArgs<T> args{};
    args.params = problem.params;
    args.rows = problem.rows;
    args.cols = problem.cols;
    args.vectors_per_row = (problem.cols + kVectorElements - 1) / kVectorElements;
    args.gate_up = static_cast<const T*>(problem.gate_up.data);
    args.gate_up_stride = problem.gate_up.stride[0];
    args.out = static_cast<T*>(problem.out.data);
    args.out_stride = problem.out.stride[0];
    args.grad_out = static_cast<const T*>(problem.grad_out.data);
    args.grad_out_stride = problem.grad_out.stride[0];
    args.grad_gate_up = static_cast<T*>(problem.grad_gate_up.data);
    args.grad_gate_up_stride = problem.grad_gate_up.stride[0];
    const cudaStream_t stream = as_stream(stream_handle);
    if (problem.params.interleaved)
      aligned ? launch_as<kBackward, T, true, true>(args, stream) : launch_as<kBackward, T, true, false>(args, stream);
    else
      aligned ? launch_as<kBackward, T, false, true>(args, stream) : launch_as<kBackward, T, false, false>(args, stream);
  });
}

}  // namespace

void swiglu(const SwigluProblem& problem, void* stream) { launch<false>(problem, stream); }
void swiglu_backward(const SwigluProblem& problem, void* stream) { launch<true>(problem, stream); }

}  // namespace moeq::cuda
