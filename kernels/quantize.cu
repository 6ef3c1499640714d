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

// A CTA quantizes tiles of kQuantizeRows x kQuantizeThreads vectors: thread t holds
// vector r * kQuantizeThreads + t of the tile, so every row is one coalesced
// 16-byte-per-thread access and each thread has kQuantizeRows loads in flight. A
// tile (8192 elements) holds whole blocks of every blocksize.
constexpr int kQuantizeThreads = 256;
constexpr int kQuantizeWarps = kQuantizeThreads / 32;
constexpr int kQuantizeRows = 4;
constexpr int kWarpRowElements = 32 * kVectorElements;                    // 256
constexpr int kRowElements = kQuantizeThreads * kVectorElements;          // 2048
constexpr int64_t kQuantizeTileElements = int64_t{kQuantizeRows} * kRowElements;
static_assert(kQuantizeTileElements % MOEQ_MAX_BLOCKSIZE == 0, "a tile holds whole blocks");

template <class T>
struct QuantizeArgs {
  const T* input;
  int64_t numel;
  int32_t log2_blocksize;
  bool vectorized;  // input 16-byte and packed 4-byte aligned
  uint8_t* packed;
  float* absmax;
  EncodeTable table;
};

// Turns each thread's per-row maximum into its block's maximum. The lanes of a
// block combine by shuffles; blocks longer than a warp's row combine the per-warp
// maxima through shared memory (all threads of the CTA take part).
__device__ __forceinline__ void block_maxima(float (&maxima)[kQuantizeRows], int blocksize,
                                             float (&warp_max)[kQuantizeRows][kQuantizeWarps]) {
  const int lanes_per_block = min(blocksize / kVectorElements, 32);
#pragma unroll
  for (int r = 0; r < kQuantizeRows; ++r)
    for (int offset = 1; offset < lanes_per_block; offset <<= 1)
      maxima[r] = fmaxf(maxima[r], __shfl_xor_sync(0xffffffffu, maxima[r], offset));
  if (blocksize <= kWarpRowElements) return;

  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) {
#pragma unroll
    for (int r = 0; r < kQuantizeRows; ++r) warp_max[r][warp] = maxima[r];
  }
  __syncthreads();
  const int warps_per_block = min(blocksize / kWarpRowElements, kQuantizeWarps);
  const int rows_per_block = max(blocksize / kRowElements, 1);
  const int first_warp = warp & ~(warps_per_block - 1);
#pragma unroll
  for (int r = 0; r < kQuantizeRows; ++r) {
    const int first_row = r & ~(rows_per_block - 1);
    float block_max = 0.0f;
    for (int row = first_row; row < first_row + rows_per_block; ++row)
      for (int w = first_warp; w < first_warp + warps_per_block; ++w)
        block_max = fmaxf(block_max, warp_max[row][w]);
    maxima[r] = block_max;
  }
  __syncthreads();  // the next tile overwrites warp_max
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
    RawVector<T> raw[kQuantizeRows];
#pragma unroll
    for (int r = 0; r < kQuantizeRows; ++r)
      first[r] = tile * kQuantizeTileElements +
                 int64_t{r * kQuantizeThreads + static_cast<int>(threadIdx.x)} * kVectorElements;
    if (whole) {
#pragma unroll
      for (int r = 0; r < kQuantizeRows; ++r) raw[r] = load_vector(args.input + first[r]);
    } else {
#pragma unroll
      for (int r = 0; r < kQuantizeRows; ++r)
        raw[r] = load_vector_guarded(args.input + first[r], numel - first[r]);
    }

    float values[kQuantizeRows][kVectorElements];
    float maxima[kQuantizeRows];
#pragma unroll
    for (int r = 0; r < kQuantizeRows; ++r) {
      to_floats(raw[r], values[r]);
      // fmaxf drops NaN, as the CPU's `magnitude > block_max` does; missing
      // elements read as 0 and change nothing.
      maxima[r] = 0.0f;
#pragma unroll
      for (int j = 0; j < kVectorElements; ++j) maxima[r] = fmaxf(maxima[r], fabsf(values[r][j]));
    }
    block_maxima(maxima, blocksize, warp_max);

#pragma unroll
    for (int r = 0; r < kQuantizeRows; ++r) {
      if (first[r] >= numel) continue;
      if ((first[r] & (blocksize - 1)) == 0) args.absmax[first[r] >> args.log2_blocksize] = maxima[r];
      const float scale = block_scale(maxima[r]);
      uint32_t word = 0;
      if (scale <= 3.402823466e38f) {
#pragma unroll
        for (int j = 0; j < kVectorElements; ++j)
          word |= table_encode<F>(table, __fmul_rn(values[r][j], scale)) << nibble_shift(j);
      } else {
        // A subnormal absmax has an infinite scale: values leave the table's domain.
#pragma unroll
        for (int j = 0; j < kVectorElements; ++j)
          word |= encode(F, __fmul_rn(values[r][j], scale)) << nibble_shift(j);
      }
      const int64_t byte = first[r] / 2;
      if (whole) {
        __stcs(reinterpret_cast<unsigned int*>(args.packed + byte), word);
      } else {
#pragma unroll
        for (int b = 0; b < 4; ++b)
          if (byte + b < packed_bytes) args.packed[byte + b] = static_cast<uint8_t>(word >> (8 * b));
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
  args.vectorized = is_aligned(problem.input, 16) && is_aligned(out.packed, 4);
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
