// The reduction of depth-split partial sums (split_partials.cuh).
#include "chained_launch.cuh"
#include "core/format.hpp"
#include "cuda_check.cuh"
#include "split_partials.cuh"

namespace moeq::cuda {
namespace {

constexpr int kSplitReduceThreads = 256;

// Grid: (row tile of `schedule`, block of kSplitReduceThreads columns, row of the
// tile): a thread sums one element, its splits' loads independent of each other.
__global__ void __launch_bounds__(kSplitReduceThreads) split_reduce_kernel(const ExpertSchedule schedule,
                                                                           const OutputView out,
                                                                           const SplitPartials partials,
                                                                           int64_t splits) {
  enter_chained_kernel();
  int32_t expert;
  int64_t row0, row_end;
  if (!find_row_tile(schedule, blockIdx.x, schedule.row_tile, &expert, &row0, &row_end)) return;
  const int64_t row = row0 + blockIdx.z;
  const int64_t col = static_cast<int64_t>(blockIdx.y) * kSplitReduceThreads + threadIdx.x;
  if (row >= row_end || col >= partials.cols) return;
  float sum = 0.0f;
#pragma unroll 4
  for (int64_t s = 0; s < splits; ++s) sum += partials.at(s, row, col);
  out.store(0, row, col, sum);
}

}  // namespace

void launch_split_reduce(const ExpertSchedule& schedule, const OutputView& out, const SplitPartials& partials,
                         int64_t splits, int64_t row_tiles, cudaStream_t stream) {
  const int64_t col_blocks = ceil_div(partials.cols, kSplitReduceThreads);
  if (row_tiles == 0 || col_blocks == 0) return;
  const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(col_blocks),
                  static_cast<unsigned>(schedule.row_tile));
  launch_chained(split_reduce_kernel, grid, kSplitReduceThreads, 0, stream, "split_reduce_kernel", schedule, out,
                 partials, splits);
}

}  // namespace moeq::cuda
