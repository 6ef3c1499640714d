// The rank-r projections x A^T and dY B at decode sizes (the schedule's 16-row
// tiles), split along the reduced depth: an expert has a few rows, so one warp per
// row tile walking all of K left most of the GPU idle (Mixtral's down projection,
// K = 14336 over 8 experts: 8 warps). Here each warp takes kChunks 64-deep chunks of
// one row tile and writes its float32 partial [rows of the tile][r] to the
// workspace; split_reduce_kernel then sums the partials of each row in split order
// (deterministic, no atomics) and rounds once into the output.
//
// Fragment layout as lora_rows_project.cuh: thread (g, t) reads rows g and g + 8 at
// depth 64 c + 16 t .. 16 t + 15, and the factor's rank row j at the same depths, so
// both operands share one depth permutation and come straight from global memory.
#pragma once

#include "chained_launch.cuh"
#include "dequant_pipeline.cuh"
#include "lora_rows_project.cuh"
#include "split_partials.cuh"
#include "tile_loaders.cuh"

#include <cstdint>
#include <type_traits>

namespace moeq::cuda {

constexpr int kSplitProjectWarps = 4;
constexpr int kSplitProjectThreads = 32 * kSplitProjectWarps;

// 64-deep chunks per warp: 4 at rank 16, fewer at wider ranks (their factor
// fragments are the registers); all of a warp's loads are issued before its first mma.
constexpr int split_project_chunks(int64_t rank) { return rank <= 16 ? 4 : rank <= 32 ? 2 : 1; }

// How a warp reads its factor slices: 16-byte vectors along depth (A of x A^T), a
// chunk staged in shared memory by 16-byte copies of rank rows (B of dY B as PEFT
// stores it, [E, N, r]: rank contiguous, depth strided), or element by element.
enum class FactorLoad { Vectors, Staged, Scalars };

namespace split_project_detail {

// Factor rank row `j`, depths d .. d + 15, as eight operand pairs (depth order d, d + 1, ...);
// zeros past the rank and the depth. kVectors: 16-bit factor of the operand dtype,
// contiguous along depth and 16-byte aligned (checked on the host), depth a multiple of 8.
template <class Element, bool kVectors>
__device__ __forceinline__ void factor_slice(const StridedView& factor, int64_t expert, int64_t rank, int64_t depth,
                                             int64_t j, int64_t d, uint32_t (&words)[8]) {
  if (j >= rank || d >= depth) {
#pragma unroll
    for (int w = 0; w < 8; ++w) words[w] = 0u;
    return;
  }
  const int64_t base = expert * factor.expert_stride + j * factor.index_stride;
  if constexpr (kVectors) {
    const uint4* vectors = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(factor.data) + base + d);
    const uint4 low = __ldg(vectors), high = d + 8 < depth ? __ldg(vectors + 1) : make_uint4(0u, 0u, 0u, 0u);
    words[0] = low.x, words[1] = low.y, words[2] = low.z, words[3] = low.w;
    words[4] = high.x, words[5] = high.y, words[6] = high.z, words[7] = high.w;
  } else {
    float value[16];
#pragma unroll
    for (int i = 0; i < 16; ++i)
      value[i] = d + i < depth ? load_as_float(factor.data, factor.type, base + (d + i) * factor.depth_stride) : 0.0f;
#pragma unroll
    for (int w = 0; w < 8; ++w) words[w] = round_pair<Element>(value[2 * w], value[2 * w + 1]);
  }
}

// A warp's staged factor: per chunk, its 64 depths x RankPad ranks as 16-bit values,
// depth d of the chunk in row (d % 16) * 4 + d / 16, so the four lanes t that read
// depths 16t + i at once hit four neighbouring rows, not one bank.
template <int RankPad, int kChunks>
struct StagedFactor {
  uint16_t value[kChunks][kProjectChunk][RankPad];

  __device__ __forceinline__ static int row_of(int depth) { return depth % 16 * 4 + depth / 16; }

  // Copies chunks first_chunk .. + kChunks of the factor (rank rows of 16-byte vectors:
  // checked on the host) by cp.async; zeros past the depth and the rank.
  __device__ __forceinline__ void copy_in(const StridedView& factor, int64_t expert, int64_t rank, int64_t depth,
                                          int64_t first_chunk) {
    constexpr int kRowVectors = RankPad / 8;
    constexpr int kVectors = kChunks * kProjectChunk * kRowVectors;
    const uint16_t* base = static_cast<const uint16_t*>(factor.data) + expert * factor.expert_stride;
    for (int v = threadIdx.x % 32; v < kVectors; v += 32) {
      const int c = v / (kProjectChunk * kRowVectors);
      const int d = v / kRowVectors % kProjectChunk;
      const int q = v % kRowVectors;
      const int64_t global_depth = (first_chunk + c) * kProjectChunk + d;
      const bool inside = global_depth < depth && 8 * q < rank;
      const uint16_t* source = inside ? base + global_depth * factor.depth_stride + 8 * q : base;
      cp_async_16_or_zero(&value[c][row_of(d)][8 * q], source, inside);
    }
    cp_async_commit_group();
  }

  // After the copies landed (cp_async_wait_all, then __syncwarp): rank row j, depths
  // 16t .. 16t + 15 of chunk c as eight operand pairs, the earlier depth low.
  __device__ __forceinline__ void slice(int c, int j, int t, uint32_t (&words)[8]) const {
#pragma unroll
    for (int w = 0; w < 8; ++w)
      words[w] = uint32_t{value[c][row_of(16 * t + 2 * w)][j]} |
                 uint32_t{value[c][row_of(16 * t + 2 * w + 1)][j]} << 16;
  }
};

}  // namespace split_project_detail

// Grid: (row tile, group of kSplitProjectWarps splits); partials: [splits][M][r].
template <class Activation, int RankPad, FactorLoad kFactorLoad>
__global__ void __launch_bounds__(kSplitProjectThreads) lora_split_project_kernel(const RowsGemmParams p,
                                                                                  const SplitPartials partials) {
  enter_chained_kernel();
  using Element = typename OperandOf<Activation>::Element;
  constexpr int kRankTiles = RankPad / 8;
  constexpr int kChunks = split_project_chunks(RankPad);
  int32_t expert;
  int64_t row0, row_end;
  if (!find_row_tile(p.schedule, blockIdx.x, kDecodeRowTile, &expert, &row0, &row_end)) return;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t split = static_cast<int64_t>(blockIdx.y) * kSplitProjectWarps + threadIdx.x / 32;
  const int64_t depth = p.depth;
  const int64_t first_chunk = split * kChunks;
  if (first_chunk * kProjectChunk >= depth) return;  // the last group's spare warps

  using Staged = split_project_detail::StagedFactor<RankPad, kChunks>;
  __shared__ std::conditional_t<kFactorLoad == FactorLoad::Staged, Staged, char> staged[kSplitProjectWarps];
  if constexpr (kFactorLoad == FactorLoad::Staged)
    staged[threadIdx.x / 32].copy_in(p.factor, expert, p.cols, depth, first_chunk);

  const int64_t row_g = row0 + g;
  const bool valid_g = row_g < row_end, valid_g8 = row_g + 8 < row_end;
  const uint16_t* x = static_cast<const uint16_t*>(p.rows.data);
  const uint16_t* x_g = x + (valid_g ? row_g * p.rows.ld : 0);
  const uint16_t* x_g8 = x + (valid_g8 ? (row_g + 8) * p.rows.ld : 0);

  uint4 x_vectors[kChunks][4];
  uint32_t factor_words[kChunks][kRankTiles][8];
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int64_t d = (first_chunk + c) * kProjectChunk + 16 * t;
    x_vectors[c][0] = load_row_vector(x_g, valid_g, d, depth);
    x_vectors[c][1] = load_row_vector(x_g, valid_g, d + 8, depth);
    x_vectors[c][2] = load_row_vector(x_g8, valid_g8, d, depth);
    x_vectors[c][3] = load_row_vector(x_g8, valid_g8, d + 8, depth);
    if constexpr (kFactorLoad != FactorLoad::Staged)
#pragma unroll
      for (int n = 0; n < kRankTiles; ++n)
        split_project_detail::factor_slice<Element, kFactorLoad == FactorLoad::Vectors>(
            p.factor, expert, p.cols, depth, 8 * n + g, d, factor_words[c][n]);
  }
  if constexpr (kFactorLoad == FactorLoad::Staged) {
    cp_async_wait_all();  // this lane's copies landed
    __syncwarp();         // and every lane's are visible to the warp
#pragma unroll
    for (int c = 0; c < kChunks; ++c)
#pragma unroll
      for (int n = 0; n < kRankTiles; ++n) staged[threadIdx.x / 32].slice(c, 8 * n + g, t, factor_words[c][n]);
  }

  float acc[kRankTiles][4] = {};
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const uint4(&v)[4] = x_vectors[c];
    const uint32_t a[4][4] = {{v[0].x, v[2].x, v[0].y, v[2].y},
                              {v[0].z, v[2].z, v[0].w, v[2].w},
                              {v[1].x, v[3].x, v[1].y, v[3].y},
                              {v[1].z, v[3].z, v[1].w, v[3].w}};
#pragma unroll
    for (int n = 0; n < kRankTiles; ++n)
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        const uint32_t b[2] = {factor_words[c][n][2 * s], factor_words[c][n][2 * s + 1]};
        mma_m16n8k16<Element>(acc[n], a[s], b);
      }
  }

#pragma unroll
  for (int n = 0; n < kRankTiles; ++n)
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t row = q < 2 ? row_g : row_g + 8;
      const int64_t col = 8 * n + 2 * t + q % 2;
      if (row < row_end && col < p.cols) partials.at(split, row, col) = acc[n][q];
    }
}

// Splits (warps per row tile) of a projection over `depth` at rank `rank`.
inline int64_t lora_split_project_splits(int64_t depth, int64_t rank) {
  const int chunks = split_project_chunks(rank);
  const int64_t depth_chunks = ceil_div(depth, kProjectChunk);
  return ceil_div(depth_chunks, chunks);
}

// The workspace the split projection needs for M rows: float32 [splits][M][r].
inline size_t lora_split_project_bytes(int64_t rows, int64_t depth, int64_t rank) {
  if (rank < 1 || rank > kSkinnyMaxRank) return 0;
  return static_cast<size_t>(lora_split_project_splits(depth, rank) * rows * rank) * sizeof(float);
}

// 16-bit activations in whole 16-byte vectors, a rank the kernel templates, and the
// decode schedule's 16-row tiles.
inline bool lora_split_project_serves(ScalarType activation, const RowsGemmParams& params) {
  return activation != ScalarType::Float32 && params.rows.vector_aligned && params.cols >= 1 &&
         params.cols <= kSkinnyMaxRank && params.schedule.row_tile == kDecodeRowTile;
}

// How the kernel reads the factor: 16-byte vectors where it is the activation's dtype,
// contiguous along depth, every row and expert 16-byte aligned, whole vectors of
// depth; staged where instead its rank is contiguous in whole 16-byte vectors (every
// depth row and expert aligned); element by element otherwise.
inline FactorLoad lora_split_factor_load(ScalarType activation, const RowsGemmParams& params) {
  const StridedView& f = params.factor;
  const bool aligned =
      f.type == activation && f.expert_stride % 8 == 0 && reinterpret_cast<uintptr_t>(f.data) % 16 == 0;
  if (aligned && f.depth_stride == 1 && f.index_stride % 8 == 0 && params.depth % 8 == 0) return FactorLoad::Vectors;
  if (aligned && f.index_stride == 1 && f.depth_stride % 8 == 0 && params.cols % 8 == 0) return FactorLoad::Staged;
  return FactorLoad::Scalars;
}

template <class Activation>
void launch_lora_split_project(const RowsGemmParams& params, int64_t rows, int64_t row_tiles, float* partials,
                               cudaStream_t stream) {
  if (row_tiles == 0) return;
  const int64_t splits = lora_split_project_splits(params.depth, params.cols);
  const SplitPartials sums{partials, rows, params.cols, 0};
  const dim3 grid(static_cast<unsigned>(row_tiles),
                  static_cast<unsigned>(ceil_div(splits, kSplitProjectWarps)));
  const auto launch = [&](auto kernel) {
    launch_chained(kernel, grid, kSplitProjectThreads, 0, stream, "lora_split_project_kernel", params, sums);
  };
  const auto launch_rank = [&](auto factor_load) {
    constexpr FactorLoad kLoad = decltype(factor_load)::value;
    if (params.cols <= 16) launch(lora_split_project_kernel<Activation, 16, kLoad>);
    else if (params.cols <= 32) launch(lora_split_project_kernel<Activation, 32, kLoad>);
    else launch(lora_split_project_kernel<Activation, 64, kLoad>);
  };
  constexpr ScalarType kActivation =
      std::is_same_v<Activation, Float16Bits> ? ScalarType::Float16 : ScalarType::BFloat16;
  switch (lora_split_factor_load(kActivation, params)) {
    case FactorLoad::Vectors: launch_rank(std::integral_constant<FactorLoad, FactorLoad::Vectors>{}); break;
    case FactorLoad::Staged: launch_rank(std::integral_constant<FactorLoad, FactorLoad::Staged>{}); break;
    case FactorLoad::Scalars: launch_rank(std::integral_constant<FactorLoad, FactorLoad::Scalars>{}); break;
  }
  launch_split_reduce(params.schedule, params.out, sums, splits, row_tiles, stream);
}

}  // namespace moeq::cuda
