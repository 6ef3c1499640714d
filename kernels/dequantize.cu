// CUDA dequantize: code value times block absmax in float32 (the absmax decoded
// from the nested statistics when present), rounded to the output dtype.
#include "core/backend.hpp"
#include "cuda_check.cuh"
#include "launch_grid.cuh"
#include "vector_io.cuh"

#include <moeq/moeq.h>

namespace moeq::cuda {
namespace {

// A CTA dequantizes tiles of kDequantizeRows x kDequantizeThreads vectors: thread t
// holds vector r * kDequantizeThreads + t, so each row reads 4 coalesced bytes and
// writes 16 (or 32) per thread, and each thread has kDequantizeRows loads in flight.
constexpr int kDequantizeThreads = 256;
constexpr int kDequantizeRows = 4;
constexpr int64_t kDequantizeTileVectors = int64_t{kDequantizeRows} * kDequantizeThreads;
static_assert(kDequantizeThreads >= MOEQ_NESTED_CODE_SIZE, "one thread per entry of the nested map");

template <class T>
struct DequantizeArgs {
  const uint8_t* packed;
  const float* absmax;          // plain
  const uint8_t* absmax_codes;  // nested
  const float* nested_absmax;
  const float* nested_code;
  const float* nested_offset;
  int64_t numel;
  int32_t log2_blocksize;
  Format format;
  bool nested;
  bool vectorized;  // packed 4-byte and output 16-byte aligned
  T* output;
};

template <class T>
__global__ void __launch_bounds__(kDequantizeThreads) dequantize_kernel(const DequantizeArgs<T> args) {
  __shared__ float code_values[16];
  __shared__ float nested_values[MOEQ_NESTED_CODE_SIZE];
  if (threadIdx.x < 16) code_values[threadIdx.x] = code_value(args.format, threadIdx.x);
  if (args.nested && threadIdx.x < MOEQ_NESTED_CODE_SIZE)
    nested_values[threadIdx.x] = args.nested_code[threadIdx.x];
  const float offset = args.nested ? args.nested_offset[0] : 0.0f;
  __syncthreads();

  const int64_t numel = args.numel;
  const int64_t vectors = (numel + kVectorElements - 1) / kVectorElements;
  const int64_t packed_bytes = (numel + 1) / 2;
  const int64_t tiles = (vectors + kDequantizeTileVectors - 1) / kDequantizeTileVectors;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const bool whole =
        args.vectorized && (tile + 1) * kDequantizeTileVectors * kVectorElements <= numel;
    int64_t vector[kDequantizeRows];
    uint32_t words[kDequantizeRows];
    float scales[kDequantizeRows];
    uint32_t absmax_codes[kDequantizeRows];
#pragma unroll
    for (int r = 0; r < kDequantizeRows; ++r) {
      vector[r] = tile * kDequantizeTileVectors + r * kDequantizeThreads + threadIdx.x;
      if (whole) {
        words[r] = __ldcs(reinterpret_cast<const unsigned int*>(args.packed) + vector[r]);
      } else {
        words[r] = 0;
#pragma unroll
        for (int b = 0; b < 4; ++b)
          if (4 * vector[r] + b < packed_bytes) words[r] |= uint32_t{args.packed[4 * vector[r] + b]} << (8 * b);
      }
      // Rows past the end read the last block's statistics and store nothing.
      const int64_t block = min(vector[r] * kVectorElements, numel - 1) >> args.log2_blocksize;
      if (args.nested) {
        absmax_codes[r] = __ldg(args.absmax_codes + block);
        scales[r] = __ldg(args.nested_absmax + block / MOEQ_NESTED_BLOCKSIZE);
      } else {
        scales[r] = __ldg(args.absmax + block);
      }
    }
#pragma unroll
    for (int r = 0; r < kDequantizeRows; ++r) {
      const int64_t first = vector[r] * kVectorElements;
      if (first >= numel) continue;
      // Two roundings (multiply, then add), as the CPU backend and bitsandbytes do.
      const float absmax =
          args.nested ? __fadd_rn(__fmul_rn(nested_values[absmax_codes[r]], scales[r]), offset)
                      : scales[r];
      float values[kVectorElements];
#pragma unroll
      for (int j = 0; j < kVectorElements; ++j)
        values[j] = __fmul_rn(code_values[(words[r] >> nibble_shift(j)) & 15u], absmax);
      const RawVector<T> raw = from_floats<T>(values);
      if (whole) store_vector(args.output + first, raw);
      else store_vector_guarded(args.output + first, raw, numel - first);
    }
  }
}

template <class T>
void launch_dequantize(const DequantizeProblem& problem, cudaStream_t stream) {
  const QuantizedBuffers& in = problem.in;
  DequantizeArgs<T> args{};
  args.packed = in.packed;
  args.absmax = in.absmax;
  args.absmax_codes = in.absmax_codes;
  args.nested_absmax = in.nested_absmax;
  args.nested_code = in.nested_code;
  args.nested_offset = in.nested_offset;
  args.numel = in.numel;
  args.log2_blocksize = __builtin_ctzll(static_cast<unsigned long long>(in.blocksize));
  args.format = in.format;
  args.nested = in.nested;
  args.vectorized = is_aligned(in.packed, 4) && is_aligned(problem.output, 16);
  args.output = static_cast<T*>(problem.output);
  const int64_t tiles = ceil_div(ceil_div(in.numel, kVectorElements), kDequantizeTileVectors);
  constexpr auto kernel = &dequantize_kernel<T>;
  kernel<<<persistent_grid<kernel>(kDequantizeThreads, tiles), kDequantizeThreads, 0, stream>>>(args);
  check_launch("dequantize_kernel");
}

}  // namespace

void dequantize(const DequantizeProblem& problem, void* stream_handle) {
  if (problem.in.numel == 0) return;
  DeviceGuard guard(problem.device_id);
  dispatch_scalar(problem.output_type, [&](auto scalar) {
    launch_dequantize<decltype(scalar)>(problem, as_stream(stream_handle));
  });
}

}  // namespace moeq::cuda
