// The CUDA quantize kernel (blockwise absmax, 4-bit encoding and nibble packing in
// one pass over the input) as a template over its tiling: kernels/quantize.cu
// launches the tiling measured best, bench/quant_tilings.cu times the others beside it.
#pragma once

#include "core/format.hpp"
#include "core/problems.hpp"
#include "cuda_check.cuh"
#include "encode_table.cuh"
#include "launch_grid.cuh"
#include "nested_statistics.cuh"
#include "nested_workspace.cuh"
#include "vector_io.cuh"

#include <moeq/moeq.h>

namespace moeq::cuda {

// A CTA quantizes tiles of Rows rows; in each row thread t holds the kLaneElements
// consecutive elements t * kLaneElements.. (LaneVectors 16-byte loads for 16-bit
// inputs) and writes their LaneVectors packed words. A row holds MOEQ_MAX_BLOCKSIZE
// elements, so blocks of every blocksize lie whole inside one row. With Prefetch a
// thread issues the next tile's loads before it encodes this one, so loads stay in
// flight while it computes. MinCtas (0: the compiler's choice) caps the registers so
// that many CTAs fit an SM.
template <int Threads, int Rows, int LaneVectors, bool Prefetch, CacheHint Load, int MinCtas>
struct QuantizeTiling {
  static constexpr int kThreads = Threads;
  static constexpr int kMinCtas = MinCtas;
  static constexpr int kWarps = Threads / 32;
  static constexpr int kRows = Rows;
  static constexpr int kLaneVectors = LaneVectors;
  static constexpr bool kPrefetch = Prefetch;
  static constexpr CacheHint kLoad = Load;
  static constexpr int kLaneElements = LaneVectors * kVectorElements;
  static constexpr int kWarpRowElements = 32 * kLaneElements;
  static constexpr int kRowElements = Threads * kLaneElements;
  static constexpr int64_t kTileElements = int64_t{Rows} * kRowElements;
  static_assert(kRowElements == MOEQ_MAX_BLOCKSIZE, "a row holds whole blocks");
  static_assert(kLaneElements <= MOEQ_MIN_BLOCKSIZE, "a lane's elements share one block");
  static_assert(LaneVectors == 1 || LaneVectors == 2 || LaneVectors == 4, "packed words store as one vector");
};

template <class T>
struct QuantizeArgs {
  const T* input;
  int64_t numel;
  int32_t log2_blocksize;
  bool vectorized;  // input 16-byte and packed word-vector aligned
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
template <class Tiling, class Max>
__device__ __forceinline__ void block_maxima(float (&maxima)[Tiling::kRows], int blocksize,
                                             float (&warp_max)[Tiling::kRows][Tiling::kWarps],
                                             Max max) {
  const int lanes_per_block = min(blocksize / Tiling::kLaneElements, 32);
#pragma unroll
  for (int r = 0; r < Tiling::kRows; ++r)
    for (int offset = 1; offset < lanes_per_block; offset <<= 1)
      maxima[r] = max(maxima[r], __shfl_xor_sync(0xffffffffu, maxima[r], offset));
  if (blocksize <= Tiling::kWarpRowElements) return;

  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) {
#pragma unroll
    for (int r = 0; r < Tiling::kRows; ++r) warp_max[r][warp] = maxima[r];
  }
  __syncthreads();
  const int warps_per_block = blocksize / Tiling::kWarpRowElements;
  const int first_warp = warp & ~(warps_per_block - 1);
#pragma unroll
  for (int r = 0; r < Tiling::kRows; ++r) {
    float block_max = warp_max[r][first_warp];
    for (int w = first_warp + 1; w < first_warp + warps_per_block; ++w)
      block_max = max(block_max, warp_max[r][w]);
    maxima[r] = block_max;
  }
  __syncthreads();  // the next use overwrites warp_max
}

template <class Tiling, class Max>
__device__ __forceinline__ void lane_maxima(const float (&values)[Tiling::kRows][Tiling::kLaneElements],
                                            float (&maxima)[Tiling::kRows], Max max) {
#pragma unroll
  for (int r = 0; r < Tiling::kRows; ++r) {
    maxima[r] = 0.0f;
#pragma unroll
    for (int j = 0; j < Tiling::kLaneElements; ++j) maxima[r] = max(maxima[r], fabsf(values[r][j]));
  }
}

// The packed words of one lane as one store (element-wise at the end or unaligned).
template <class Tiling>
__device__ __forceinline__ void store_packed(uint8_t* packed, int64_t byte, int64_t packed_bytes,
                                             const uint32_t (&words)[Tiling::kLaneVectors], bool whole) {
  if (whole) {
    void* destination = packed + byte;
    if constexpr (Tiling::kLaneVectors == 1)
      __stcs(static_cast<unsigned int*>(destination), words[0]);
    else if constexpr (Tiling::kLaneVectors == 2)
      __stcs(static_cast<uint2*>(destination), make_uint2(words[0], words[1]));
    else
      __stcs(static_cast<uint4*>(destination), make_uint4(words[0], words[1], words[2], words[3]));
    return;
  }
#pragma unroll
  for (int b = 0; b < 4 * Tiling::kLaneVectors; ++b)
    if (byte + b < packed_bytes) packed[byte + b] = static_cast<uint8_t>(words[b / 4] >> (8 * (b % 4)));
}

// The raw input of one tile: LaneVectors vectors of every row a thread holds.
template <class Tiling, class T>
struct QuantizeLoads {
  RawVector<T> raw[Tiling::kRows][Tiling::kLaneVectors];
};

template <class Tiling>
__device__ __forceinline__ int64_t lane_first(int64_t tile, int row) {
  return tile * Tiling::kTileElements +
         int64_t{row * Tiling::kThreads + static_cast<int>(threadIdx.x)} * Tiling::kLaneElements;
}

// Whole tiles (aligned buffers, every row inside the tensor) load vectors; the
// others go element-wise, reading zeros past the end.
template <class Tiling, bool Whole, class T>
__device__ __forceinline__ QuantizeLoads<Tiling, T> load_quantize_tile(const QuantizeArgs<T>& args,
                                                                       int64_t tile) {
  QuantizeLoads<Tiling, T> loads;
#pragma unroll
  for (int r = 0; r < Tiling::kRows; ++r)
#pragma unroll
    for (int v = 0; v < Tiling::kLaneVectors; ++v) {
      const int64_t start = lane_first<Tiling>(tile, r) + v * kVectorElements;
      if constexpr (Whole) loads.raw[r][v] = load_vector<Tiling::kLoad>(args.input + start);
      else loads.raw[r][v] = load_vector_guarded(args.input + start, args.numel - start);
    }
  return loads;
}

template <class Tiling, Format F, bool Whole, class T>
__device__ __forceinline__ void quantize_tile(const QuantizeArgs<T>& args, int64_t tile,
                                              const QuantizeLoads<Tiling, T>& loads,
                                              const EncodeEntry* table,
                                              float (&warp_max)[Tiling::kRows][Tiling::kWarps]) {
  constexpr int kRows = Tiling::kRows;
  constexpr int kLaneVectors = Tiling::kLaneVectors;
  constexpr int kLaneElements = Tiling::kLaneElements;
  const int64_t numel = args.numel;
  const int blocksize = 1 << args.log2_blocksize;
  float values[kRows][kLaneElements];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int v = 0; v < kLaneVectors; ++v)
#pragma unroll
      for (int j = 0; j < kVectorElements; ++j)
        values[r][v * kVectorElements + j] = bits_to_float32<T>(element_bits(loads.raw[r][v], j));

  // The maxima keep NaN, which flags the rare tiles that need NaN-aware work;
  // elsewhere every x * scale is finite and the table encoder applies.
  float maxima[kRows];
  lane_maxima<Tiling>(values, maxima, KeepNan{});
  block_maxima<Tiling>(maxima, blocksize, warp_max, KeepNan{});
  bool saw_nan = false;
#pragma unroll
  for (int r = 0; r < kRows; ++r) saw_nan |= isnan(maxima[r]);
  saw_nan = blocksize <= Tiling::kWarpRowElements ? __any_sync(0xffffffffu, saw_nan)
                                                  : __syncthreads_or(saw_nan);
  if (saw_nan) {
    lane_maxima<Tiling>(values, maxima, DropNan{});
    block_maxima<Tiling>(maxima, blocksize, warp_max, DropNan{});
  }

#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t first = lane_first<Tiling>(tile, r);
    if (!Whole && first >= numel) continue;
    if ((first & (blocksize - 1)) == 0) args.absmax[first >> args.log2_blocksize] = maxima[r];
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
    store_packed<Tiling>(args.packed, first / 2, (numel + 1) / 2, words, Whole);
  }
}

template <class Tiling, class T, Format F>
__global__ void __launch_bounds__(Tiling::kThreads, Tiling::kMinCtas)
    quantize_kernel(const QuantizeArgs<T> args) {
  __shared__ EncodeEntry table[kEncodeEntries];
  __shared__ float warp_max[Tiling::kRows][Tiling::kWarps];
  if (threadIdx.x < kEncodeEntries) table[threadIdx.x] = args.table.entries[threadIdx.x];
  __syncthreads();

  const int64_t tiles = (args.numel + Tiling::kTileElements - 1) / Tiling::kTileElements;
  const int64_t whole_tiles = args.vectorized ? args.numel / Tiling::kTileElements : 0;
  int64_t tile = blockIdx.x;
  if constexpr (Tiling::kPrefetch) {
    if (tile < whole_tiles) {
      QuantizeLoads<Tiling, T> loads = load_quantize_tile<Tiling, true>(args, tile);
      for (; tile < whole_tiles; tile += gridDim.x) {
        const int64_t next = tile + gridDim.x;
        QuantizeLoads<Tiling, T> upcoming{};
        if (next < whole_tiles) upcoming = load_quantize_tile<Tiling, true>(args, next);
        quantize_tile<Tiling, F, true>(args, tile, loads, table, warp_max);
        loads = upcoming;
      }
    }
  } else {
    for (; tile < whole_tiles; tile += gridDim.x)
      quantize_tile<Tiling, F, true>(args, tile, load_quantize_tile<Tiling, true>(args, tile), table,
                                     warp_max);
  }
  for (; tile < tiles; tile += gridDim.x)
    quantize_tile<Tiling, F, false>(args, tile, load_quantize_tile<Tiling, false>(args, tile), table,
                                    warp_max);
}

// Quantizes a non-empty tensor with `Tiling` on `stream`, writing the float32 absmax to `absmax`.
template <class Tiling, class T, Format F>
void launch_quantize(const QuantizeProblem& problem, float* absmax, cudaStream_t stream) {
  const QuantizedBuffers& out = problem.out;
  QuantizeArgs<T> args{};
  args.input = static_cast<const T*>(problem.input);
  args.numel = out.numel;
  args.log2_blocksize = __builtin_ctzll(static_cast<unsigned long long>(out.blocksize));
  args.vectorized = is_aligned(problem.input, 16) && is_aligned(out.packed, 4 * Tiling::kLaneVectors);
  args.packed = out.packed;
  args.absmax = absmax;
  args.table = encode_table(F);
  const int64_t tiles = ceil_div(out.numel, Tiling::kTileElements);
  constexpr auto kernel = &quantize_kernel<Tiling, T, F>;
  kernel<<<persistent_grid<kernel>(Tiling::kThreads, tiles), Tiling::kThreads, 0, stream>>>(args);
  check_launch("quantize_kernel");
}

// Quantizes `problem` with `Tiling` on `stream` (the current device's): the kernel for
// its dtype and format, and for nested output the statistics of nested_statistics.cu
// from `workspace` (nested_workspace_bytes of device scratch; unused when plain).
template <class Tiling>
void quantize_tensor(const QuantizeProblem& problem, void* workspace, cudaStream_t stream) {
  const QuantizedBuffers& out = problem.out;
  float* absmax = out.absmax;
  NestedWorkspace nested;
  if (out.nested) {
    nested = nested_workspace(workspace, out.block_count());
    absmax = nested.absmax;
  }
  if (out.numel > 0) {
    dispatch_scalar(problem.input_type, [&](auto scalar) {
      dispatch_format(out.format, [&](auto format) {
        launch_quantize<Tiling, decltype(scalar), decltype(format)::value>(problem, absmax, stream);
      });
    });
  }
  if (out.nested) quantize_statistics(nested, out, stream);
}

}  // namespace moeq::cuda
