// CUDA dequantize: code value times block absmax in float32 (the absmax decoded
// from the nested statistics when present), rounded to the output dtype.
#include "core/backend.hpp"
#include "cuda_check.cuh"
#include "launch_grid.cuh"
#include "vector_io.cuh"

#include <moeq/moeq.h>

namespace moeq::cuda {
namespace {

// A CTA dequantizes tiles of kDequantizeRows rows; in each row thread t reads the 8
// packed bytes of elements t * kLaneElements.. (one block: 16 divides every
// blocksize) and writes them as two 16-byte (float: four) vectors. Each thread keeps
// kDequantizeRows 8-byte loads in flight: the writes are 4x the reads, so reads
// must not wait on one another.
constexpr int kDequantizeThreads = 256;
constexpr int kDequantizeRows = 4;
constexpr int kLaneVectors = 2;
constexpr int kLaneElements = kLaneVectors * kVectorElements;  // 16
constexpr int64_t kDequantizeTileElements = int64_t{kDequantizeRows} * kDequantizeThreads * kLaneElements;
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
  bool vectorized;  // packed 8-byte and output 16-byte aligned
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
  const int64_t packed_bytes = (numel + 1) / 2;
  const int64_t tiles = (numel + kDequantizeTileElements - 1) / kDequantizeTileElements;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const bool whole = args.vectorized && (tile + 1) * kDequantizeTileElements <= numel;
    const int64_t lane_first = tile * kDequantizeTileElements + int64_t{threadIdx.x} * kLaneElements;
    uint2 words[kDequantizeRows];
    float scales[kDequantizeRows];
    uint32_t absmax_codes[kDequantizeRows];
#pragma unroll
    for (int r = 0; r < kDequantizeRows; ++r) {
      const int64_t first = lane_first + int64_t{r} * kDequantizeThreads * kLaneElements;
      const int64_t byte = first / 2;
      if (whole) {
        words[r] = __ldcs(reinterpret_cast<const uint2*>(args.packed + byte));
      } else {
        uint32_t word[2] = {0, 0};
#pragma unroll
        for (int b = 0; b < 8; ++b)
          if (byte + b < packed_bytes) word[b / 4] |= uint32_t{args.packed[byte + b]} << (8 * (b % 4));
        words[r] = make_uint2(word[0], word[1]);
      }
      // Rows past the end read the last block's statistics and store nothing.
      const int64_t block = min(first, numel - 1) >> args.log2_blocksize;
      if (args.nested) {
        absmax_codes[r] = __ldg(args.absmax_codes + block);
        scales[r] = __ldg(args.nested_absmax + block / MOEQ_NESTED_BLOCKSIZE);
      } else {
        scales[r] = __ldg(args.absmax + block);
      }
    }
#pragma unroll
    for (int r = 0; r < kDequantizeRows; ++r) {
      const int64_t first = lane_first + int64_t{r} * kDequantizeThreads * kLaneElements;
      if (first >= numel) continue;
      // Two roundings (multiply, then add), as the CPU backend and bitsandbytes do.
      const float absmax =
          args.nested ? __fadd_rn(__fmul_rn(nested_values[absmax_codes[r]], scales[r]), offset)
                      : scales[r];
#pragma unroll
      for (int v = 0; v < kLaneVectors; ++v) {
        const uint32_t word = v == 0 ? words[r].x : words[r].y;
        float values[kVectorElements];
#pragma unroll
        for (int j = 0; j < kVectorElements; ++j)
          values[j] = __fmul_rn(code_values[(word >> nibble_shift(j)) & 15u], absmax);
        const RawVector<T> raw = from_floats<T>(values);
        const int64_t start = first + v * kVectorElements;
        if (whole) store_vector(args.output + start, raw);
        else store_vector_guarded(args.output + start, raw, numel - start);
      }
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
  args.vectorized = is_aligned(in.packed, 8) && is_aligned(problem.output, 16);
  args.output = static_cast<T*>(problem.output);
  const int64_t tiles = ceil_div(in.numel, kDequantizeTileElements);
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
