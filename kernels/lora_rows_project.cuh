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

#include "expert_rows_gemm.cuh"
#include "row_vectors.cuh"

#include <cstdint>

namespace moeq::cuda {

// The largest rank these kernels template (zeros pad the mma tiles up to it).
constexpr int64_t kSkinnyMaxRank = 64;

constexpr int kProjectWarps = kTrainingRowTile / 16;
constexpr int kProjectThreads = 32 * kProjectWarps;
constexpr int kProjectChunk = 64;  // depth per step: 16 elements for each of a row's 4 threads
constexpr int kProjectFactorStride = kProjectChunk + kSmemPadElements;

// This thread's share of the factor chunk c: rank rows first_rank + 4 i, column
// d = 64 c + column, widened to float32; zero past the rank and the depth.
template <int RankPad>
struct ProjectFactorShare {
  static constexpr int kPerThread = RankPad * kProjectChunk / kProjectThreads;
  float value[kPerThread];

  template <class Stored>
  __device__ __forceinline__ void load_typed(const StridedView& factor, int64_t expert, int64_t rank,
                                             int64_t depth, int64_t d, int first_rank) {
    const Stored* base = static_cast<const Stored*>(factor.data) + expert * factor.expert_stride +
                         d * factor.depth_stride;
    Stored raw[kPerThread];
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
      if (d < depth && first_rank + 4 * i < rank) raw[i] = __ldg(base + (first_rank + 4 * i) * factor.index_stride);
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
      value[i] = d < depth && first_rank + 4 * i < rank ? to_float32(raw[i]) : 0.0f;
  }

  __device__ __forceinline__ void load(const StridedView& factor, int64_t expert, int64_t rank,
                                       int64_t depth, int64_t chunk) {
    const int64_t d = chunk * kProjectChunk + threadIdx.x % kProjectChunk;
    const int first_rank = threadIdx.x / kProjectChunk;
    switch (factor.type) {
      case ScalarType::Float16: load_typed<__half>(factor, expert, rank, depth, d, first_rank); break;
      case ScalarType::BFloat16: load_typed<__nv_bfloat16>(factor, expert, rank, depth, d, first_rank); break;
      case ScalarType::Float32: load_typed<float>(factor, expert, rank, depth, d, first_rank); break;
    }
  }

  // Rounded to the operand type once, as the row-tiled GEMM's loaders do.
  template <class Element>
  __device__ __forceinline__ void store(Element (*stage)[kProjectFactorStride]) const {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
      stage[threadIdx.x / kProjectChunk + 4 * i][threadIdx.x % kProjectChunk] = round_to<Element>(value[i]);
  }
};

// acc[n] += rows (g, g + 8) x the factor's rank columns 8 n + g over one 64-deep
// chunk: x[0..1] row g's 16 elements, x[2..3] row g + 8's.
template <class Element, int RankTiles>
__device__ __forceinline__ void project_chunk(float (&acc)[RankTiles][4], const uint4 (&x)[4],
                                              const Element (*stage)[kProjectFactorStride]) {
  const int lane = threadIdx.x % 32;
  const int g = lane / 4;
  const int t = lane % 4;
#pragma unroll
  for (int n = 0; n < RankTiles; ++n) {
    const uint4* f = reinterpret_cast<const uint4*>(&stage[8 * n + g][16 * t]);
    const uint4 low = f[0];
    const uint4 high = f[1];
    const uint32_t a0[4] = {x[0].x, x[2].x, x[0].y, x[2].y};
    const uint32_t a1[4] = {x[0].z, x[2].z, x[0].w, x[2].w};
    const uint32_t a2[4] = {x[1].x, x[3].x, x[1].y, x[3].y};
    const uint32_t a3[4] = {x[1].z, x[3].z, x[1].w, x[3].w};
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

// Stages: 64-deep chunks of X in flight per thread (64 bytes each); with MinBlocks
// blocks per SM, Stages * MinBlocks * 16 KiB must cover the memory latency at full
// bandwidth (~32 KiB per SM on an H200).
template <class Activation, int RankPad, int Stages, int MinBlocks>
__global__ void __launch_bounds__(kProjectThreads, MinBlocks) lora_rows_project_kernel(const RowsGemmParams p) {
  using Element = typename OperandOf<Activation>::Element;
  constexpr int kRankTiles = RankPad / 8;
  __shared__ __align__(16) Element factor_stage[2][RankPad][kProjectFactorStride];

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
  const int64_t chunks = (depth + kProjectChunk - 1) / kProjectChunk;

  auto load_x = [&](int64_t chunk, uint4 (&v)[4]) {
    const bool live = chunk < chunks;
    const int64_t col = chunk * kProjectChunk + 16 * (lane % 4);
    v[0] = load_row_vector(x_g, live && valid_g, col, depth);
    v[1] = load_row_vector(x_g, live && valid_g, col + 8, depth);
    v[2] = load_row_vector(x_g8, live && valid_g8, col, depth);
    v[3] = load_row_vector(x_g8, live && valid_g8, col + 8, depth);
  };

  float acc[kRankTiles][4];
#pragma unroll
  for (int n = 0; n < kRankTiles; ++n)
#pragma unroll
    for (int q = 0; q < 4; ++q) acc[n][q] = 0.0f;

  // The factor runs one chunk ahead in shared memory and one more in registers,
  // so its L2 round trip hides behind a whole chunk of X.
  ProjectFactorShare<RankPad> factor;
  factor.load(p.factor, expert, p.cols, depth, 0);
  factor.store(factor_stage[0]);
  factor.load(p.factor, expert, p.cols, depth, 1);
  uint4 x_ring[Stages][4];
#pragma unroll
  for (int s = 0; s < Stages; ++s) load_x(s, x_ring[s]);
  __syncthreads();

  for (int64_t chunk0 = 0; chunk0 < chunks; chunk0 += Stages) {
#pragma unroll
    for (int s = 0; s < Stages; ++s) {
      const int64_t chunk = chunk0 + s;
      if (chunk >= chunks) break;
      project_chunk<Element, kRankTiles>(acc, x_ring[s], factor_stage[chunk % 2]);
      load_x(chunk + Stages, x_ring[s]);
      factor.store(factor_stage[(chunk + 1) % 2]);
      factor.load(p.factor, expert, p.cols, depth, chunk + 2);
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
  // Wider ranks hold more accumulators and factor values: fewer chunks in flight,
  // or one block per SM with the whole register file (no spills).
  if (params.cols <= 16)
    lora_rows_project_kernel<Activation, 16, 4, 2><<<grid, kProjectThreads, 0, stream>>>(params);
  else if (params.cols <= 32)
    lora_rows_project_kernel<Activation, 32, 3, 2><<<grid, kProjectThreads, 0, stream>>>(params);
  else
    lora_rows_project_kernel<Activation, 64, 4, 1><<<grid, kProjectThreads, 0, stream>>>(params);
  check_launch("lora_rows_project_kernel");
}

}  // namespace moeq::cuda
