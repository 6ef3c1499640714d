// Depth-split (split-K) sums of the decode-sized kernels, kept deterministic: each
// split writes its float32 partial [rows][cols] of the output to the workspace (no
// atomics), and split_reduce_kernel adds the partials of each element in split
// order and rounds once into the output, as an unsplit kernel would round its sum.
#pragma once

#include "expert_schedule.cuh"
#include "operand_views.cuh"

#include <cuda_runtime.h>

#include <cstdint>

namespace moeq::cuda {

// Where split `split` of a depth-split kernel writes: [splits][rows][cols] float32.
// partials == nullptr: the kernel is not split and writes the output itself.
struct SplitPartials {
  float* partials;
  int64_t rows;
  int64_t cols;
  int64_t split_depth;  // depth per split (all of it when not split)

  __host__ __device__ __forceinline__ bool split() const { return partials != nullptr; }
  __device__ __forceinline__ float& at(int64_t split, int64_t row, int64_t col) const {
    return partials[(split * rows + row) * cols + col];
  }
};

// out[row, col] = the sum of the splits' partials in split order, for the rows of
// each tile of `schedule` (row_tiles: the launch's bound on its tiles).
void launch_split_reduce(const ExpertSchedule& schedule, const OutputView& out, const SplitPartials& partials,
                         int64_t splits, int64_t row_tiles, cudaStream_t stream);

}  // namespace moeq::cuda
