// The LoRA gradients as reductions over each expert's rows:
//   out_e[i, j] = scale * sum over rows m of expert e of left[m, i] * right[m, j]
// with dA_e = s (dY_e B_e)^T x_e and dB_e = s dY_e^T (x_e A_e^T). One block per
// (expert, i tile, j tile) walks the expert's rows in order: no atomics, the same
// bits on every run; an expert without rows gets zeros.
#pragma once

#include "chained_launch.cuh"
#include "depth_loop.cuh"
#include "expert_schedule.cuh"
#include "mma_sync.cuh"
#include "tile_loaders.cuh"

namespace moeq::cuda {

// left and right are either activation rows (RowsView, `*_rows`) or a strided
// rank-r intermediate read as (0, row m, column) (StridedView, `*_strided`).
struct LoraGradParams {
  ExpertSchedule schedule;  // row ranges only
  RowsView left_rows;
  StridedView left_strided;
  RowsView right_rows;
  StridedView right_strided;
  int64_t out_rows;  // extent of i
  int64_t out_cols;  // extent of j
  float scale;
  OutputView out;    // (expert, i, j)
};

template <class Activation, class Tile, int Threads, bool kStrided>
struct RowMajorLoader;
template <class Activation, class Tile, int Threads>
struct RowMajorLoader<Activation, Tile, Threads, false> {
  using Type = RowsLoader<Activation, Tile, Threads>;
  static __device__ __forceinline__ Type make(const RowsView& rows, const StridedView&,
                                              int64_t row_end, int64_t) {
    return Type{rows, row_end};
  }
};
template <class Activation, class Tile, int Threads>
struct RowMajorLoader<Activation, Tile, Threads, true> {
  using Type = StridedLoader<Tile, Threads>;
  static __device__ __forceinline__ Type make(const RowsView&, const StridedView& view,
                                              int64_t row_end, int64_t width) {
    Type loader;
    loader.data = view.data;
    loader.type = view.type;
    loader.offset = 0;
    loader.row_stride = view.index_stride;
    loader.col_stride = view.depth_stride;
    loader.row_limit = row_end;
    loader.col_limit = width;
    loader.scale = 1.0f;
    return loader;
  }
};

template <class Activation, class Shape, bool kLeftStrided, bool kRightStrided>
__global__ void __launch_bounds__(Shape::kThreads) lora_grad_kernel(const LoraGradParams p) {
  enter_chained_kernel();
  using Accumulator = BlockAccumulator<Shape, OperandOf<Activation>, true, true>;
  using ATile = typename Accumulator::ATile;
  using BTile = typename Accumulator::BTile;
  __shared__ OperandStage<Accumulator> stage[2];

  const int32_t expert = blockIdx.x;
  const int64_t i0 = static_cast<int64_t>(blockIdx.y) * Shape::kRows;
  const int64_t j0 = static_cast<int64_t>(blockIdx.z) * Shape::kCols;
  const int64_t row_begin = p.schedule.row_begin[expert];
  const int64_t row_end = p.schedule.row_end[expert];

  Accumulator accumulator;
  accumulator.zero();
  using Left = RowMajorLoader<Activation, ATile, Shape::kThreads, kLeftStrided>;
  using Right = RowMajorLoader<Activation, BTile, Shape::kThreads, kRightStrided>;
  auto left = Left::make(p.left_rows, p.left_strided, row_end, p.out_rows);
  auto right = Right::make(p.right_rows, p.right_strided, row_end, p.out_cols);
  run_depth_steps(accumulator, stage, left, right,
                  (row_end - row_begin + Shape::kDepth - 1) / Shape::kDepth,
                  [&](int64_t step, int64_t* a_row, int64_t* a_col, int64_t* b_row, int64_t* b_col) {
                    *a_row = *b_row = row_begin + step * Shape::kDepth;
                    *a_col = i0;
                    *b_col = j0;
                  });

  accumulator.for_each([&](int i, int j, float value) {
    if (i0 + i < p.out_rows && j0 + j < p.out_cols)
      p.out.store(expert, i0 + i, j0 + j, p.scale * value);
  });
}

}  // namespace moeq::cuda
