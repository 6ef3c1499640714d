// The CUDA dequantize kernel as a template over its tiling: kernels/dequantize.cu
// launches the tiling measured best, bench/quant_tilings.cu times the others beside it.
#pragma once

#include "core/format.hpp"
#include "core/problems.hpp"
#include "cuda_check.cuh"
#include "launch_grid.cuh"
#include "vector_io.cuh"

#include <moeq/moeq.h>

#include <algorithm>

namespace moeq::cuda {

// A CTA dequantizes tiles of Rows x kThreads vectors of 8 elements: thread t holds
// vector r * kThreads + t, so each row reads 4 coalesced packed bytes and writes 16
// (float: 32) per thread, whole 32-byte sectors per store instruction. Each thread
// issues the Rows packed loads of a tile before its first store; with Prefetch it
// also issues the next tile's loads before this tile's stores, so loads stay in
// flight while it computes. MinCtas caps the registers so that many CTAs fit an SM;
// MaxCtas (0: no limit) caps the CTAs per SM of the grid, fewer streams at once.
template <int Rows, bool Prefetch, CacheHint Store, int MinCtas, int MaxCtas>
struct DequantizeTiling {
  static constexpr int kThreads = 256;
  static constexpr int kRows = Rows;
  static constexpr bool kPrefetch = Prefetch;
  static constexpr CacheHint kStore = Store;
  static constexpr int kMinCtas = MinCtas;
  static constexpr int kMaxCtas = MaxCtas;
  static constexpr int64_t kTileVectors = int64_t{Rows} * kThreads;
  static_assert(kThreads >= MOEQ_NESTED_CODE_SIZE, "one thread per entry of the nested map");
};

// The kernel's arguments: the problem's own buffers (QuantizedBuffers, read only)
// and what the launch derives from them.
template <class T>
struct DequantizeArgs {
  QuantizedBuffers in;
  int32_t log2_blocksize;
  bool vectorized;  // packed 4-byte and output 16-byte aligned
  T* output;
};

// What a thread reads for one tile before it writes anything.
template <int Rows>
struct DequantizeLoads {
  uint32_t words[Rows];         // 8 packed codes per row
  float scales[Rows];           // plain: the absmax; nested: the group's nested absmax
  uint32_t absmax_codes[Rows];  // nested: the block's 8-bit code
};

// Whole tiles (aligned buffers, every row inside the tensor) load and store vectors;
// the others go element-wise, their rows past the end reading the last block's
// statistics and storing nothing.
template <class Tiling, bool Nested, bool Whole, class T>
__device__ __forceinline__ DequantizeLoads<Tiling::kRows> load_tile(const DequantizeArgs<T>& args,
                                                                    int64_t tile) {
  const int64_t first_vector = tile * Tiling::kTileVectors + threadIdx.x;
  DequantizeLoads<Tiling::kRows> loads;
#pragma unroll
  for (int r = 0; r < Tiling::kRows; ++r) {
    const int64_t vector = first_vector + r * Tiling::kThreads;
    if constexpr (Whole) {
      loads.words[r] = __ldcs(reinterpret_cast<const unsigned int*>(args.in.packed) + vector);
    } else {
      const int64_t packed_bytes = (args.in.numel + 1) / 2;
      loads.words[r] = 0;
#pragma unroll
      for (int b = 0; b < 4; ++b)
        if (4 * vector + b < packed_bytes) loads.words[r] |= uint32_t{args.in.packed[4 * vector + b]} << (8 * b);
    }
  }
#pragma unroll
  for (int r = 0; r < Tiling::kRows; ++r) {
    const int64_t first = (first_vector + r * Tiling::kThreads) * kVectorElements;
    const int64_t block = (Whole ? first : min(first, args.in.numel - 1)) >> args.log2_blocksize;
    if constexpr (Nested) {
      loads.absmax_codes[r] = __ldg(args.in.absmax_codes + block);
      loads.scales[r] = __ldg(args.in.nested_absmax + block / MOEQ_NESTED_BLOCKSIZE);
    } else {
      loads.absmax_codes[r] = 0;
      loads.scales[r] = __ldg(args.in.absmax + block);
    }
  }
  return loads;
}

template <class Tiling, bool Nested, bool Whole, class T>
__device__ __forceinline__ void store_tile(const DequantizeArgs<T>& args, int64_t tile,
                                           const DequantizeLoads<Tiling::kRows>& loads,
                                           const float* code_values, const float* nested_values,
                                           float offset) {
#pragma unroll
  for (int r = 0; r < Tiling::kRows; ++r) {
    const int64_t first =
        (tile * Tiling::kTileVectors + r * Tiling::kThreads + threadIdx.x) * kVectorElements;
    if (!Whole && first >= args.in.numel) continue;
    // Two roundings (multiply, then add), as the CPU backend and bitsandbytes do.
    const float absmax =
        Nested ? __fadd_rn(__fmul_rn(nested_values[loads.absmax_codes[r]], loads.scales[r]), offset)
               : loads.scales[r];
    float values[kVectorElements];
#pragma unroll
    for (int j = 0; j < kVectorElements; ++j)
      values[j] = __fmul_rn(code_values[(loads.words[r] >> nibble_shift(j)) & 15u], absmax);
    const RawVector<T> raw = from_floats<T>(values);
    if constexpr (Whole) store_vector<Tiling::kStore>(args.output + first, raw);
    else store_vector_guarded(args.output + first, raw, args.in.numel - first);
  }
}

template <class Tiling, class T, bool Nested>
__global__ void __launch_bounds__(Tiling::kThreads, Tiling::kMinCtas)
    dequantize_kernel(const DequantizeArgs<T> args) {
  __shared__ float code_values[16];
  __shared__ float nested_values[MOEQ_NESTED_CODE_SIZE];
  if (threadIdx.x < 16) code_values[threadIdx.x] = code_value(args.in.format, threadIdx.x);
  if (Nested && threadIdx.x < MOEQ_NESTED_CODE_SIZE)
    nested_values[threadIdx.x] = args.in.nested_code[threadIdx.x];
  const float offset = Nested ? args.in.nested_offset[0] : 0.0f;
  __syncthreads();

  constexpr int64_t kTileElements = Tiling::kTileVectors * kVectorElements;
  const int64_t tiles = (args.in.numel + kTileElements - 1) / kTileElements;
  const int64_t whole_tiles = args.vectorized ? args.in.numel / kTileElements : 0;
  int64_t tile = blockIdx.x;
  if constexpr (Tiling::kPrefetch) {
    if (tile < whole_tiles) {
      DequantizeLoads<Tiling::kRows> loads = load_tile<Tiling, Nested, true>(args, tile);
      for (; tile < whole_tiles; tile += gridDim.x) {
        const int64_t next = tile + gridDim.x;
        DequantizeLoads<Tiling::kRows> upcoming{};
        if (next < whole_tiles) upcoming = load_tile<Tiling, Nested, true>(args, next);
        store_tile<Tiling, Nested, true>(args, tile, loads, code_values, nested_values, offset);
        loads = upcoming;
      }
    }
  } else {
    for (; tile < whole_tiles; tile += gridDim.x)
      store_tile<Tiling, Nested, true>(args, tile, load_tile<Tiling, Nested, true>(args, tile),
                                       code_values, nested_values, offset);
  }
  for (; tile < tiles; tile += gridDim.x)
    store_tile<Tiling, Nested, false>(args, tile, load_tile<Tiling, Nested, false>(args, tile),
                                      code_values, nested_values, offset);
}

template <class T>
DequantizeArgs<T> dequantize_args(const DequantizeProblem& problem) {
  const QuantizedBuffers& in = problem.in;
  DequantizeArgs<T> args{};
  args.in = in;
  args.log2_blocksize = __builtin_ctzll(static_cast<unsigned long long>(in.blocksize));
  args.vectorized = is_aligned(in.packed, 4) && is_aligned(problem.output, 16);
  args.output = static_cast<T*>(problem.output);
  return args;
}

// Dequantizes a non-empty tensor with `Tiling` on `stream` (the current device's).
template <class Tiling, class T, bool Nested>
void launch_dequantize(const DequantizeProblem& problem, cudaStream_t stream) {
  const int64_t tiles = ceil_div(ceil_div(problem.in.numel, kVectorElements), Tiling::kTileVectors);
  constexpr auto kernel = &dequantize_kernel<Tiling, T, Nested>;
  unsigned grid = persistent_grid<kernel>(Tiling::kThreads, tiles);
  if constexpr (Tiling::kMaxCtas > 0) {
    int device = 0, multiprocessors = 0;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice");
    check_cuda(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device),
               "cudaDeviceGetAttribute(MultiProcessorCount)");
    grid = std::min<unsigned>(grid, static_cast<unsigned>(multiprocessors * Tiling::kMaxCtas));
  }
  kernel<<<grid, Tiling::kThreads, 0, stream>>>(dequantize_args<T>(problem));
  check_launch("dequantize_kernel");
}

// Dequantizes a non-empty `problem` with `Tiling` on `stream`, for its output dtype.
template <class Tiling>
void dequantize_tensor(const DequantizeProblem& problem, cudaStream_t stream) {
  dispatch_scalar(problem.output_type, [&](auto scalar) {
    if (problem.in.nested) launch_dequantize<Tiling, decltype(scalar), true>(problem, stream);
    else launch_dequantize<Tiling, decltype(scalar), false>(problem, stream);
  });
}

}  // namespace moeq::cuda
