// CUDA quantize: blockwise absmax, 4-bit encoding and nibble packing in one pass
// over the input; the nested statistics follow in nested_statistics.cu.
#include "core/backend.hpp"
#include "cuda_check.cuh"
#include "encode_table.cuh"
#include "launch_grid.cuh"
#include "nested_statistics.cuh"
#include "nested_workspace.cuh"
#include "vector_io.cuh"

namespace moeq::cuda {
namespace {

// A CTA quantizes tiles of kQuantizeRows rows; in each row thread t holds the
// kLaneElements consecutive elements t * kLaneElements.. (two 16-byte loads for
// 16-bit inputs) and writes their 8 packed bytes. A row (4096 elements) holds
// whole blocks of every blocksize.
constexpr int kQuantizeThreads = 256;
constexpr int kQuantizeWarps = kQuantizeThreads / 32;
constexpr int kQuantizeRows = 2;
constexpr int kLaneVectors = 2;
constexpr int kLaneElements = kLaneVectors * kVectorElements;              // 16
constexpr int kWarpRowElements = 32 * kLaneElements;                       // 512
constexpr int kRowElements = kQuantizeThreads * kLaneElements;             // 4096
constexpr int64_t kQuantizeTileElements = int64_t{kQuantizeRows} * kRowElements;
static_assert(kRowElements == MOEQ_MAX_BLOCKSIZE, "a row holds whole blocks");

template <class T>
struct QuantizeArgs {
  const T* input;
  int64_t numel;
  int32_t log2_blocksize;
  bool vectorized;  // input 16-byte and packed 8-byte aligned
  uint8_t* packed;
  float* absmax;
  EncodeTable table;
};

// max that returns NaN when either operand is NaN (fmaxf drops NaN).
__device__ __forceinline__ float max_keeping_nan(float a, float b) {
  float result;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(result) : "f"(a), "f"(b));
  return result;
}

struct KeepNan {
  __device__ float operator()(float a, float b) const { return max_keeping_nan(a, b); }
};
// As the CPU's `magnitude > block_max`: NaN never enters the maximum.
struct DropNan {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Turns each thread's per-row maximum into its block's maximum. The lanes of a
// block combine by shuffles; blocks longer than a warp's row combine the per-warp
// maxima through shared memory (then every thread of the CTA must take part).
template <class Max>
__device__ __forceinline__ void block_maxima(float (&maxima)[kQuantizeRows], int blocksize,
                                             float (&warp_max)[kQuantizeRows][kQuantizeWarps],
                                             Max max) {
  const int lanes_per_block = min(blocksize / kLaneElements, 32);
#pragma unroll
  for (int r = 0; r < kQuantizeRows; ++r)
    for (int offset = 1; offset < lanes_per_block; offset <<= 1)
      maxima[r] = max(maxima[r], __shfl_xor_sync(0xffffffffu, maxima[r], offset));
  if (blocksize <= kWarpRowElements) return;

  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) {
#pragma unroll
    for (int r = 0; r < kQuantizeRows; ++r) warp_max[r][warp] = maxima[r];
  }
  __syncthreads();
  const int warps_per_block = blocksize / kWarpRowElements;
  const int first_warp = warp & ~(warps_per_block - 1);
#pragma unroll
  for (int r = 0; r < kQuantizeRows; ++r) {
    float block_max = warp_max[r][first_warp];
    for (int w = first_warp + 1; w < first_warp + warps_per_block; ++w)
      block_max = max(block_max, warp_max[r][w]);
    maxima[r] = block_max;
  }
  __syncthreads();  // the next use overwrites warp_max
}

template <class Max>
__device__ __forceinline__ void lane_maxima(const float (&values)[kQuantizeRows][kLaneElements],
                                            float (&maxima)[kQuantizeRows], Max max) {
#pragma unroll
  for (int r = 0; r < kQuantizeRows; ++r) {
    maxima[r] = 0.0f;
#pragma unroll
    for (int j = 0; j < kLaneElements; ++j) maxima[r] = max(maxima[r], fabsf(values[r][j]));
  }
}

template <class T, Format F>
__global__ void __launch_bounds__(kQuantizeThreads) quantize_kernel(const QuantizeArgs<T> args) {
  __shared__ EncodeEntry table[kEncodeEntries];
  __shared__ float warp_max[kQuantizeRows][kQuantizeWarps];
  if (threadIdx.x < kEncodeEntries) table[threadIdx.x] = args.table.entries[threadIdx.x];
  __syncthreads();

  const int64_t numel = args.numel;
  const int blocksize = 1 << args.log2_blocksize;
  const int64_t packed_bytes = (numel + 1) / 2;
  const int64_t tiles = (numel + kQuantizeTileElements - 1) / kQuantizeTileElements;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    // Whole tiles of aligned buffers move as vectors; the last tile goes element-wise.
    const bool whole = args.vectorized && (tile + 1) * kQuantizeTileElements <= numel;
    int64_t first[kQuantizeRows];
    RawVector<T> raw[kQuantizeRows][kLaneVectors];
#pragma unroll
    for (int r = 0; r < kQuantizeRows; ++r) {
      first[r] = tile * kQuantizeTileElements +
                 int64_t{r * kQuantizeThreads + static_cast<int>(threadIdx.x)} * kLaneElements;
#pragma unroll
      for (int v = 0; v < kLaneVectors; ++v) {
        const int64_t start = first[r] + v * kVectorElements;
        raw[r][v] = whole ? load_vector(args.input + start)
                          : load_vector_guarded(args.input + start, numel - start);
      }
    }
    float values[kQuantizeRows][kLaneElements];
#pragma unroll
    for (int r = 0; r < kQuantizeRows; ++r)
#pragma unroll
      for (int v = 0; v < kLaneVectors; ++v)
#pragma unroll
        for (int j = 0; j < kVectorElements; ++j)
          values[r][v * kVectorElements + j] = bits_to_float32<T>(element_bits(raw[r][v], j));

    // The maxima keep NaN, which flags the rare tiles that need NaN-aware work;
    // elsewhere every x * scale is finite and the table encoder applies.
    float maxima[kQuantizeRows];
    lane_maxima(values, maxima, KeepNan{});
    block_maxima(maxima, blocksize, warp_max, KeepNan{});
    bool saw_nan = false;
#pragma unroll
    for (int r = 0; r < kQuantizeRows; ++r) saw_nan |= isnan(maxima[r]);
    saw_nan = blocksize <= kWarpRowElements ? __any_sync(0xffffffffu, saw_nan) : __syncthreads_or(saw_nan);
    if (saw_nan) {
      lane_maxima(values, maxima, DropNan{});
      block_maxima(maxima, blocksize, warp_max, DropNan{});
    }

#pragma unroll
    for (int r = 0; r < kQuantizeRows; ++r) {
      if (first[r] >= numel) continue;
      if ((first[r] & (blocksize - 1)) == 0) args.absmax[first[r] >> args.log2_blocksize] = maxima[r];
      const float scale = block_scale(maxima[r]);
      uint32_t words[kLaneVectors] = {};
      if (!saw_nan && maxima[r] <= 3.402823466e38f && scale <= 3.402823466e38f) {
#pragma unroll
        for (int j = 0; j < kLaneElements; ++j)
          words[j / kVectorElements] +=
              table_encode<F>(table, __fmul_rn(values[r][j], scale)) << nibble_shift(j % kVectorElements);
      } else {
        // NaN, an infinity, or a subnormal absmax (infinite scale).
#pragma unroll
        for (int j = 0; j < kLaneElements; ++j)
          words[j / kVectorElements] |=
              encode(F, __fmul_rn(values[r][j], scale)) << nibble_shift(j % kVectorElements);
      }
      const int64_t byte = first[r] / 2;
      if (whole) {
        __stcs(reinterpret_cast<uint2*>(args.packed + byte), make_uint2(words[0], words[1]));
      } else {
#pragma unroll
        for (int b = 0; b < 4 * kLaneVectors; ++b)
          if (byte + b < packed_bytes) args.packed[byte + b] = static_cast<uint8_t>(words[b / 4] >> (8 * (b % 4)));
      }
    }
  }
}

template <class T, Format F>
void launch_quantize(const QuantizeProblem& problem, float* absmax, cudaStream_t stream) {
  const QuantizedBuffers& out = problem.out;
  QuantizeArgs<T> args{};
  args.input = static_cast<const T*>(problem.input);
  args.numel = out.numel;
  args.log2_blocksize = __builtin_ctzll(static_cast<unsigned long long>(out.blocksize));
  args.vectorized = is_aligned(problem.input, 16) && is_aligned(out.packed, 8);
  args.packed = out.packed;
  args.absmax = absmax;
  args.table = encode_table(F);
  const int64_t tiles = ceil_div(out.numel, kQuantizeTileElements);
  constexpr auto kernel = &quantize_kernel<T, F>;
  kernel<<<persistent_grid<kernel>(kQuantizeThreads, tiles), kQuantizeThreads, 0, stream>>>(args);
  check_launch("quantize_kernel");
}

}  // namespace

size_t quantize_workspace_bytes(const QuantizedBuffers& layout) {
  return layout.nested ? nested_workspace_bytes(layout.block_count()) : 0;
}

void quantize(const QuantizeProblem& problem, void* stream_handle) {
  const QuantizedBuffers& out = problem.out;
  DeviceGuard guard(problem.device_id);
  const cudaStream_t stream = as_stream(stream_handle);
  StreamScratch scratch(stream);
  float* absmax = out.absmax;
  NestedWorkspace workspace;
  if (out.nested) {
    void* base = problem.workspace != nullptr ? problem.workspace
                                              : scratch.allocate(quantize_workspace_bytes(out));
    workspace = nested_workspace(base, out.block_count());
    absmax = workspace.absmax;
  }
  if (out.numel > 0) {
    dispatch_scalar(problem.input_type, [&](auto scalar) {
      dispatch_format(out.format, [&](auto format) {
        launch_quantize<decltype(scalar), decltype(format)::value>(problem, absmax, stream);
      });
    });
  }
  if (out.nested) quantize_statistics(workspace, out, stream);
}

}  // namespace moeq::cuda
