// The rank-r projections x A^T and dY B (P[m, j] = sum_d X[m, d] F_e[j, d]) for
// 16-bit activation rows at memory bandwidth: X is read once, straight from global
// memory into mma fragments, and only the small factor goes through shared memory.
//
// A block is one 128-row tile of the schedule, a warp its 16 rows of one expert.
// The reduced index d may be permuted freely as long as X and F share the
// permutation, so thread (g = lane / 4, t = lane % 4) reads rows g and g + 8 at
// d = 64 c + 16 t .. 16 t + 15 (two 16-byte vectors per row: the warp covers
// 128-byte row segments) and feeds 4 mma k-steps with them: logical k {2t, 2t+1}
// of step s is physical d = 16 t + 4 s + {0, 1}, and {2t + 8, 2t + 9} is
// 16 t + 4 s + {2, 3}. The factor chunk is staged as [rank][64] so a thread reads
// its B fragments for rank column g with the same layout as two 16-byte loads.
#pragma once

#include "chained_launch.cuh"
#include "expert_rows_gemm.cuh"
#include "row_vectors.cuh"

#include <cstdint>

namespace moeq::cuda {

// The largest rank these kernels template (zeros pad the mma tiles up to it).
constexpr int64_t kSkinnyMaxRank = 64;

constexpr int kProjectWarps = kTrainingRowTile / 16;
constexpr int kProjectThreads = 32 * kProjectWarps;
constexpr int kProjectChunk = 64;  // depth of one mma group: 16 elements for each of a row's 4 threads

// The rows kernel reads Vectors such groups of a row at once (a 128 * Vectors byte
// segment of each row per step): at 2 blocks per SM, 256-byte runs of a row measured
// 6% faster than 128-byte pieces (bench/RESULTS.md, ninth pass); 128-byte pieces at 3
// blocks per SM beat both (eleventh pass). Within a step, thread t holds
// elements 16 (Vectors t + v) .. + 15 for group v; the factor is staged with group v
// of thread t at column 16 (4 v + t), so each group's B fragments are read like the
// 64-deep layout's (one 128-byte run per rank row: no bank conflicts).
template <int Vectors>
struct ProjectStep {
  static constexpr int kDepth = kProjectChunk * Vectors;
  static constexpr int kFactorStride = kDepth + kSmemPadElements;
  // Staged column of the element `offset` deep into a step.
  __device__ static constexpr int staged_column(int offset) {
    return 16 * (4 * (offset % (16 * Vectors) / 16) + offset / (16 * Vectors)) + offset % 16;
  }
};

// This thread's share of the factor for step c: rank rows first_rank + kRankStep i,
// element d = kDepth c + offset, rounded to the operand type once (as the row-tiled
// GEMM's loaders do; held as such, half the registers of float32); zero past the
// rank and the depth.
template <class Element, int RankPad, int Vectors>
struct ProjectFactorShare {
  using Step = ProjectStep<Vectors>;
  static constexpr int kPerThread = RankPad * Step::kDepth / kProjectThreads;
  static constexpr int kRankStep = kProjectThreads / Step::kDepth;
  Element value[kPerThread];

  template <class Stored>
  __device__ __forceinline__ void load_typed(const StridedView& factor, int64_t expert, int64_t rank,
                                             int64_t depth, int64_t d, int first_rank) {
    const Stored* base = static_cast<const Stored*>(factor.data) + expert * factor.expert_stride +
                         d * factor.depth_stride;
    Stored raw[kPerThread];
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
      if (d < depth && first_rank + kRankStep * i < rank)
        raw[i] = __ldg(base + (first_rank + kRankStep * i) * factor.index_stride);
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
      value[i] = round_to<Element>(d < depth && first_rank + kRankStep * i < rank ? to_float32(raw[i]) : 0.0f);
  }

  __device__ __forceinline__ void load(const StridedView& factor, int64_t expert, int64_t rank,
                                       int64_t depth, int64_t step) {
    const int64_t d = step * Step::kDepth + threadIdx.x % Step::kDepth;
    const int first_rank = threadIdx.x / Step::kDepth;
    switch (factor.type) {
      case ScalarType::Float16: load_typed<__half>(factor, expert, rank, depth, d, first_rank); break;
      case ScalarType::BFloat16: load_typed<__nv_bfloat16>(factor, expert, rank, depth, d, first_rank); break;
      case ScalarType::Float32: load_typed<float>(factor, expert, rank, depth, d, first_rank); break;
    }
  }

  __device__ __forceinline__ void store(Element (*stage)[Step::kFactorStride]) const {
    const int column = Step::staged_column(threadIdx.x % Step::kDepth);
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) stage[threadIdx.x / Step::kDepth + kRankStep * i][column] = value[i];
  }
};

// acc[n] += rows (g, g + 8) x the factor's rank columns 8 n + g over one step:
// x[2 v .. 2 v + 1] row g's 16 elements of group v, x[2 Vectors + 2 v ..] row g + 8's.
template <class Element, int RankTiles, int Vectors>
__device__ __forceinline__ void project_step(float (&acc)[RankTiles][4], const uint4 (&x)[4 * Vectors],
                                             const Element (*stage)[ProjectStep<Vectors>::kFactorStride]) {
  const int lane = threadIdx.x % 32;
  const int g = lane / 4;
  const int t = lane % 4;
#pragma unroll
  for (int v = 0; v < Vectors; ++v) {
    const uint4& g_low = x[2 * v];
    const uint4& g_high = x[2 * v + 1];
    const uint4& g8_low = x[2 * Vectors + 2 * v];
    const uint4& g8_high = x[2 * Vectors + 2 * v + 1];
    const uint32_t a0[4] = {g_low.x, g8_low.x, g_low.y, g8_low.y};
    const uint32_t a1[4] = {g_low.z, g8_low.z, g_low.w, g8_low.w};
    const uint32_t a2[4] = {g_high.x, g8_high.x, g_high.y, g8_high.y};
    const uint32_t a3[4] = {g_high.z, g8_high.z, g_high.w, g8_high.w};
#pragma unroll
    for (int n = 0; n < RankTiles; ++n) {
      const uint4* f = reinterpret_cast<const uint4*>(&stage[8 * n + g][16 * (4 * v + t)]);
      const uint4 low = f[0];
      const uint4 high = f[1];
      const uint32_t b0[2] = {low.x, low.y};
      const uint32_t b1[2] = {low.z, low.w};
      const uint32_t b2[2] = {high.x, high.y};
      const uint32_t b3[2] = {high.z, high.w};
      mma_m16n8k16<Element>(acc[n], a0, b0);
      mma_m16n8k16<Element>(acc[n], a1, b1);
      mma_m16n8k16<Element>(acc[n], a2, b2);
      mma_m16n8k16<Element>(acc[n], a3, b3);
    }
  }
}

// Stages: steps of X in flight per thread (64 * Vectors bytes each); with MinBlocks
// blocks per SM, Stages * MinBlocks * 16 KiB * Vectors must cover the memory latency
// at full bandwidth (~32 KiB per SM on an H200).
template <class Activation, int RankPad, int Vectors, int Stages, int MinBlocks>
__global__ void __launch_bounds__(kProjectThreads, MinBlocks) lora_rows_project_kernel(const RowsGemmParams p) {
  enter_chained_kernel();
  using Element = typename OperandOf<Activation>::Element;
  using Step = ProjectStep<Vectors>;
  constexpr int kRankTiles = RankPad / 8;
  __shared__ __align__(16) Element factor_stage[2][RankPad][Step::kFactorStride];

  int32_t expert;
  int64_t row0, row_end;
  if (!find_row_tile(p.schedule, blockIdx.x, kTrainingRowTile, &expert, &row0, &row_end)) return;
  const int lane = threadIdx.x % 32;
  const int64_t row_g = row0 + 16 * (threadIdx.x / 32) + lane / 4;
  const bool valid_g = row_g < row_end;
  const bool valid_g8 = row_g + 8 < row_end;
  const uint16_t* x = static_cast<const uint16_t*>(p.rows.data);
  const uint16_t* x_g = x + (valid_g ? row_g * p.rows.ld : 0);
  const uint16_t* x_g8 = x + (valid_g8 ? (row_g + 8) * p.rows.ld : 0);
  const int64_t depth = p.depth;
  const int64_t steps = (depth + Step::kDepth - 1) / Step::kDepth;

  auto load_x = [&](int64_t step, uint4 (&v)[4 * Vectors]) {
    const bool live = step < steps;
    const int64_t col = step * Step::kDepth + 16 * Vectors * (lane % 4);
#pragma unroll
    for (int j = 0; j < 2 * Vectors; ++j) {
      v[j] = load_row_vector(x_g, live && valid_g, col + 8 * j, depth);
      v[2 * Vectors + j] = load_row_vector(x_g8, live && valid_g8, col + 8 * j, depth);
    }
  };

  float acc[kRankTiles][4];
#pragma unroll
  for (int n = 0; n < kRankTiles; ++n)
#pragma unroll
    for (int q = 0; q < 4; ++q) acc[n][q] = 0.0f;

  // The factor runs one step ahead in shared memory and one more in registers,
  // so its L2 round trip hides behind a whole step of X.
  ProjectFactorShare<Element, RankPad, Vectors> factor;
  factor.load(p.factor, expert, p.cols, depth, 0);
  factor.store(factor_stage[0]);
  factor.load(p.factor, expert, p.cols, depth, 1);
  uint4 x_ring[Stages][4 * Vectors];
#pragma unroll
  for (int s = 0; s < Stages; ++s) load_x(s, x_ring[s]);
  __syncthreads();

  for (int64_t step0 = 0; step0 < steps; step0 += Stages) {
#pragma unroll
    for (int s = 0; s < Stages; ++s) {
      const int64_t step = step0 + s;
      if (step >= steps) break;
      project_step<Element, kRankTiles, Vectors>(acc, x_ring[s], factor_stage[step % 2]);
      load_x(step + Stages, x_ring[s]);
      factor.store(factor_stage[(step + 1) % 2]);
      factor.load(p.factor, expert, p.cols, depth, step + 2);
      __syncthreads();
    }
  }

  // The float32 sums rounded once into the output's dtype, as rows_gemm_kernel does.
#pragma unroll
  for (int n = 0; n < kRankTiles; ++n)
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t row = q < 2 ? row_g : row_g + 8;
      const int64_t col = 8 * n + 2 * (lane % 4) + q % 2;
      if (row < row_end && col < p.cols) p.out.store(0, row, col, acc[n][q]);
    }
}

// 16-bit activations in whole 16-byte vectors, a rank the kernel templates, and
// the training schedule's 128-row tiles (a warp per 16 rows).
inline bool lora_rows_project_serves(ScalarType activation, const RowsGemmParams& params) {
  return activation != ScalarType::Float32 && params.rows.vector_aligned && params.cols >= 1 &&
         params.cols <= kSkinnyMaxRank && params.schedule.row_tile == kTrainingRowTile;
}

template <class Activation>
void launch_lora_rows_project(const RowsGemmParams& params, int64_t row_tiles, cudaStream_t stream) {
  if (row_tiles == 0) return;
  const dim3 grid(static_cast<unsigned>(row_tiles));
  // Rank 16: 128-byte row segments, 2 steps in flight, 3 blocks per SM (80 registers,
  // no spills on sm_90a); more warps per SM beat longer runs per warp: the 8192-token
  // backward 1-3% faster than 256-byte segments at 2 blocks (bench/RESULTS.md, eleventh
  // pass). Wider ranks hold more accumulators and factor values: 128-byte segments at 2
  // blocks, or one block per SM with the whole register file (cuobjdump -res-usage).
  const auto launch = [&](auto kernel) {
    launch_chained(kernel, grid, kProjectThreads, 0, stream, "lora_rows_project_kernel", params);
  };
  if (params.cols <= 16)
    launch(lora_rows_project_kernel<Activation, 16, 1, 2, 3>);
  else if (params.cols <= 32)
    launch(lora_rows_project_kernel<Activation, 32, 1, 3, 2>);
  else
    launch(lora_rows_project_kernel<Activation, 64, 1, 4, 1>);
}

}  // namespace moeq::cuda
