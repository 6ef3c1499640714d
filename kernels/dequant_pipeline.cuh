// The depth loop of the dequantizing GEMM for 16-bit activations: a ring of
// kPipelineStages steps of raw inputs (activation tiles and packed 4-bit chunks with
// their absmax) copied by cp.async, so global memory latency hides behind
// kPipelineStages - 1 steps of products, and two dequantized weight tiles.
#pragma once

#include "dequant_tile.cuh"
#include "mma_sync.cuh"
#include "tile_loaders.cuh"

#include <cstdint>

namespace moeq::cuda {

constexpr int kPipelineStages = 3;

__device__ __forceinline__ void cp_async_4(void* shared_destination, const void* global_source) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(smem_address(shared_destination)),
               "l"(global_source));
}
__device__ __forceinline__ void cp_async_commit_group() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait_group() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// One ring slot of packed chunks: chunk i of the step's weight tile belongs to
// thread i % Threads, which copies it in and later dequantizes it, so no barrier
// separates the two.
template <class Tile>
struct RawWeightSlot {
  static constexpr int kChunks = Tile::kRows * (Tile::kCols / kChunkElements);
  uint4 bytes[kChunks];
  float absmax[kChunks];
};

// Tile element (r, c) = dequantized W[expert, row0 + r, col0 + c] through a ring slot.
template <class Tile, int Threads>
struct QuantRingLoader {
  using Slot = RawWeightSlot<Tile>;
  static constexpr int kChunksPerRow = Tile::kCols / kChunkElements;
  static constexpr int kChunks = Slot::kChunks;
  static constexpr int kPerThread = (kChunks + Threads - 1) / Threads;

  QuantWeightView weight;
  int64_t expert;
  const CodeTable* table;

  // Starts the copies of step (row0, col0) into `slot`. Out-of-range chunks get
  // absmax 0 (zeros); unaligned packed bytes and nested absmax are loaded here and
  // stored directly (their latency is not hidden).
  __device__ __forceinline__ void fetch(int64_t row0, int64_t col0, Slot& slot) const {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int index = threadIdx.x + i * Threads;
      if (kChunks % Threads != 0 && index >= kChunks) break;
      const int64_t d1 = row0 + index / kChunksPerRow;
      const int64_t d2 = col0 + index % kChunksPerRow * kChunkElements;
      if (d1 >= weight.dim1 || d2 >= weight.dim2) {
        slot.bytes[index] = make_uint4(0u, 0u, 0u, 0u);
        slot.absmax[index] = 0.0f;
        continue;
      }
      const int64_t flat = (expert * weight.dim1 + d1) * weight.dim2 + d2;
      if (weight.packed_aligned && !weight.nested) {
        cp_async_16(&slot.bytes[index], weight.packed + flat / 2);
        cp_async_4(&slot.absmax[index], weight.absmax + (flat >> weight.blocksize_log2));
      } else {
        PackedChunk chunk;
        chunk.fetch(weight, expert, d1, d2);
        slot.bytes[index] = chunk.bytes;
        slot.absmax[index] = chunk.absmax;
      }
    }
  }

  // Dequantizes this thread's chunks of `slot` (its copies have landed) into `tile`.
  __device__ __forceinline__ void commit(const Slot& slot, Tile& tile) const {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int index = threadIdx.x + i * Threads;
      if (kChunks % Threads != 0 && index >= kChunks) break;
      const PackedChunk chunk{slot.bytes[index], slot.absmax[index]};
      chunk.store(tile, index / kChunksPerRow, index % kChunksPerRow * kChunkElements, *table);
    }
  }
};

template <class Accumulator>
struct PipelineSmem {
  typename Accumulator::ATile a[kPipelineStages];
  RawWeightSlot<typename Accumulator::BTile> raw[kPipelineStages];
  typename Accumulator::BTile b[2];
};

// Runs `steps` depth steps: the copies of step s + kPipelineStages - 1 start while
// the tensor cores work on step s, then step s + 1's weight is dequantized into the
// other weight tile; one barrier per step. position(step, &a_row, &a_col, &b_row,
// &b_col) gives the tiles' first coordinates. Ends with no copies in flight and a barrier.
template <class Accumulator, class ALoader, class BLoader, class Position>
__device__ __forceinline__ void run_dequant_pipeline(Accumulator& accumulator,
                                                     PipelineSmem<Accumulator>& smem, ALoader& a,
                                                     const BLoader& b, int64_t steps,
                                                     Position&& position) {
  static_assert(ALoader::kDirect, "activations must be copied straight into shared memory");
  if (steps <= 0) return;
  int64_t a_row, a_col, b_row, b_col;
  // Every step commits one (possibly empty) group, so "step s landed" is always
  // "at most kPipelineStages - 2 groups pending".
  auto start_copies = [&](int64_t step) {
    if (step < steps) {
      const int slot = static_cast<int>(step % kPipelineStages);
      position(step, &a_row, &a_col, &b_row, &b_col);
      a.fetch(a_row, a_col, smem.a[slot]);
      b.fetch(b_row, b_col, smem.raw[slot]);
    }
    cp_async_commit_group();
  };
#pragma unroll
  for (int step = 0; step < kPipelineStages - 1; ++step) start_copies(step);
  cp_async_wait_group<kPipelineStages - 2>();
  b.commit(smem.raw[0], smem.b[0]);
  __syncthreads();
  for (int64_t step = 0; step < steps; ++step) {
    start_copies(step + kPipelineStages - 1);
    accumulator.step(smem.a[step % kPipelineStages], smem.b[step % 2]);
    cp_async_wait_group<kPipelineStages - 2>();
    if (step + 1 < steps) b.commit(smem.raw[(step + 1) % kPipelineStages], smem.b[(step + 1) % 2]);
    __syncthreads();
  }
  cp_async_wait_all();
}

}  // namespace moeq::cuda
