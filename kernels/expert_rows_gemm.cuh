// The row-tiled expert GEMM: one block per (expert row tile, output column tile),
// out = A_e B_e^T over a first operand pair (activation rows x dequantized weight,
// or x strided rank-r factor), then optionally + (scale * lora_rows) lora_weight^T
// as extra depth steps through the same accumulators. Serves y = x W^T + s (x A^T) B^T,
// dX = dY W + s (dY B) A, and the projections x A^T and dY B.
#pragma once

#include "chained_launch.cuh"
#include "cuda_check.cuh"
#include "depth_loop.cuh"
#include "dequant_pipeline.cuh"
#include "expert_schedule.cuh"
#include "mma_sync.cuh"
#include "tile_loaders.cuh"

#include <atomic>
#include <string>
#include <type_traits>

namespace moeq::cuda {

// What a row-tiled GEMM reads and writes (expert row tiles from `schedule`).
//   rows:    the activation rows A (x or dY), `depth` columns.
//   weight:  B as a quantized [E, D1, D2] weight (the dequantizing GEMM), or
//   factor:  B as a strided rank-r factor (the projections): element
//            (expert, output column, depth).
//   lora_rows / lora_weight: the second pair, `rank` deep (rank 0: none):
//            lora_rows (row, 0, k) and lora_weight (expert, output column, k).
struct RowsGemmParams {
  ExpertSchedule schedule;
  RowsView rows;
  int64_t depth;
  int64_t cols;
  QuantWeightView weight;
  StridedView factor;
  int64_t rank;
  StridedView lora_rows;
  float lora_scale;
  StridedView lora_weight;
  OutputView out;
};

// A tile of a strided view: tile rows follow `depth` when depth_major, else the index.
template <class Tile, int Threads, int LoadsInFlight>
__device__ __forceinline__ StridedLoader<Tile, Threads, LoadsInFlight> strided_loader(
    const StridedView& view, int64_t expert, bool depth_major, int64_t index_limit,
    int64_t depth_limit, float scale) {
  StridedLoader<Tile, Threads, LoadsInFlight> loader;
  loader.data = view.data;
  loader.type = view.type;
  loader.offset = expert * view.expert_stride;
  loader.row_stride = depth_major ? view.depth_stride : view.index_stride;
  loader.col_stride = depth_major ? view.index_stride : view.depth_stride;
  loader.row_limit = depth_major ? depth_limit : index_limit;
  loader.col_limit = depth_major ? index_limit : depth_limit;
  loader.scale = scale;
  return loader;
}

template <class Accumulator>
struct RowsGemmSmem {
  OperandStage<Accumulator> stage[2];
  CodeTable table;
};
// The dequantizing GEMM with 16-bit activations: the pipeline's ring, whose memory
// the LoRA depth steps reuse as two plain stages once the ring has drained.
template <class Accumulator>
struct PipelinedGemmSmem {
  union {
    PipelineSmem<Accumulator> pipeline;
    OperandStage<Accumulator> stage[2];
  };
  CodeTable table;
};

template <class Activation, class Shape, bool kQuantized, bool kBTransposed>
struct RowsGemmTypes {
  using Accumulator = BlockAccumulator<Shape, OperandOf<Activation>, false, kBTransposed>;
  using ARows = RowsLoader<Activation, typename Accumulator::ATile, Shape::kThreads>;
  static constexpr bool kPipelined = kQuantized && ARows::kDirect;
  using Smem = std::conditional_t<kPipelined, PipelinedGemmSmem<Accumulator>, RowsGemmSmem<Accumulator>>;
};

// kQuantized: B of the first pair is `weight` (else `factor`). kBTransposed: B
// tiles are stored [depth][column] (the weight's D1 is the depth) instead of
// [column][depth]. kLora: the second pair is compiled in.
// The schedule must have been built with row tile Shape::kRows (checked at launch).
// float32 operands (two term planes) fill shared memory with one block per SM, so
// they get the whole register file.
template <class Activation, class Shape, bool kQuantized, bool kBTransposed, bool kLora>
__global__ void __launch_bounds__(Shape::kThreads, OperandOf<Activation>::kTerms == 1 ? Shape::kMinBlocks : 1)
rows_gemm_kernel(const RowsGemmParams p) {
  enter_chained_kernel();
  using Types = RowsGemmTypes<Activation, Shape, kQuantized, kBTransposed>;
  using Accumulator = typename Types::Accumulator;
  using Smem = typename Types::Smem;
  extern __shared__ uint4 smem_words[];
  Smem& smem = *reinterpret_cast<Smem*>(smem_words);

  int32_t expert;
  int64_t row0, row_end;
  if (!find_row_tile(p.schedule, blockIdx.x, Shape::kRows, &expert, &row0, &row_end)) return;
  const int64_t col0 = static_cast<int64_t>(blockIdx.y) * Shape::kCols;
  if constexpr (kQuantized) {
    smem.table.load(p.weight.format);
    __syncthreads();
  }

  // Element loads in flight per thread for the rank-r operands: the dequantizing
  // GEMM's accumulators and 2-blocks-per-SM budget leave room for 4 (more spill).
  constexpr int kStridedLoads = kQuantized ? 4 : 16;
  Accumulator accumulator;
  accumulator.zero();
  using ATile = typename Accumulator::ATile;
  using BTile = typename Accumulator::BTile;
  typename Types::ARows a_rows{p.rows, row_end};
  const int64_t first_steps = (p.depth + Shape::kDepth - 1) / Shape::kDepth;
  // B tile coordinates of depth step `step` in the weight's (D1, D2) or the tile's (row, col).
  auto first_position = [&](int64_t step, int64_t* a_row, int64_t* a_col, int64_t* b_row,
                            int64_t* b_col) {
    *a_row = row0;
    *a_col = step * Shape::kDepth;
    *b_row = kBTransposed ? step * Shape::kDepth : col0;
    *b_col = kBTransposed ? col0 : step * Shape::kDepth;
  };
  if constexpr (Types::kPipelined) {
    QuantRingLoader<BTile, Shape::kThreads> b_weight{p.weight, expert, &smem.table};
    run_dequant_pipeline(accumulator, smem.pipeline, a_rows, b_weight, first_steps, first_position);
  } else if constexpr (kQuantized) {
    QuantLoader<BTile, Shape::kThreads> b_weight{p.weight, expert, &smem.table};
    run_depth_steps(accumulator, smem.stage, a_rows, b_weight, first_steps, first_position);
  } else {
    auto b_factor = strided_loader<BTile, Shape::kThreads, kStridedLoads>(p.factor, expert, kBTransposed,
                                                                          p.cols, p.depth, 1.0f);
    run_depth_steps(accumulator, smem.stage, a_rows, b_factor, first_steps, first_position);
  }

  if constexpr (kLora) {
    if (p.rank > 0) {
      auto a_lora = strided_loader<ATile, Shape::kThreads, kStridedLoads>(p.lora_rows, 0, false, row_end,
                                                                          p.rank, p.lora_scale);
      auto b_lora = strided_loader<BTile, Shape::kThreads, kStridedLoads>(p.lora_weight, expert, kBTransposed,
                                                                          p.cols, p.rank, 1.0f);
      run_depth_steps(accumulator, smem.stage, a_lora, b_lora, (p.rank + Shape::kDepth - 1) / Shape::kDepth,
                      first_position);
    }
  }

  accumulator.for_each([&](int i, int j, float value) {
    const int64_t row = row0 + i;
    const int64_t col = col0 + j;
    if (row >= row_end || col >= p.cols) return;
    p.out.store(0, row, col, value);
  });
}

// Lets `Kernel` take `bytes` of dynamic shared memory on the current device, once
// per kernel and device (the attribute call is not free on a decode-sized launch).
template <auto Kernel>
void allow_dynamic_smem(size_t bytes) {
  static std::atomic<uint64_t> done_devices{0};
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (bit != 0 && (done_devices.load(std::memory_order_relaxed) & bit) != 0) return;
  check_cuda(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(bytes)),
             "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
  done_devices.fetch_or(bit, std::memory_order_relaxed);
}

// Launches one instantiation over `row_tiles` row tiles (an upper bound: blocks
// past the schedule's last tile return at once) and every output column tile.
template <class Activation, class Shape, bool kQuantized, bool kBTransposed, bool kLora>
void launch_rows_gemm(const RowsGemmParams& params, int64_t row_tiles, cudaStream_t stream) {
  if (params.schedule.row_tile != Shape::kRows)
    fail(MOEQ_ERR_INTERNAL, "rows_gemm_kernel: schedule of " + std::to_string(params.schedule.row_tile) +
                                "-row tiles for a " + std::to_string(Shape::kRows) + "-row kernel");
  const int64_t col_tiles = (params.cols + Shape::kCols - 1) / Shape::kCols;
  if (row_tiles == 0 || col_tiles == 0) return;
  using Smem = typename RowsGemmTypes<Activation, Shape, kQuantized, kBTransposed>::Smem;
  constexpr auto kernel = rows_gemm_kernel<Activation, Shape, kQuantized, kBTransposed, kLora>;
  allow_dynamic_smem<kernel>(sizeof(Smem));
  launch_chained(kernel, dim3(static_cast<unsigned>(row_tiles), static_cast<unsigned>(col_tiles)), Shape::kThreads,
                 sizeof(Smem), stream, "rows_gemm_kernel", params);
}

}  // namespace moeq::cuda
