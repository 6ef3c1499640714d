// Builds the (expert, row tile) schedule from group_end on the device (one block).
#include "chained_launch.cuh"
#include "cuda_check.cuh"
#include "expert_schedule.cuh"

#include <cub/block/block_scan.cuh>

namespace moeq::cuda {
namespace {

constexpr int kScheduleThreads = 1024;

struct MaxOp {
  __device__ __forceinline__ int32_t operator()(int32_t a, int32_t b) const { return a > b ? a : b; }
};

__global__ void __launch_bounds__(kScheduleThreads)
expert_schedule_kernel(const void* group_end, bool group_end_is_int64, int64_t rows, int row_tile,
                       ExpertSchedule schedule) {
  enter_chained_kernel();
  using Scan = cub::BlockScan<int32_t, kScheduleThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ int32_t chunk_end[kScheduleThreads];
  __shared__ int32_t carried_end;
  __shared__ int32_t carried_tiles;
  if (threadIdx.x == 0) {
    carried_end = 0;
    carried_tiles = 0;
  }
  __syncthreads();
  for (int32_t base = 0; base < schedule.experts; base += kScheduleThreads) {
    const int32_t e = base + threadIdx.x;
    int64_t end = 0;
    if (e < schedule.experts) {
      end = group_end_is_int64 ? static_cast<const int64_t*>(group_end)[e]
                               : static_cast<const int32_t*>(group_end)[e];
      end = end < 0 ? 0 : (end > rows ? rows : end);
    }
    int32_t running_end;
    Scan(scan_storage).InclusiveScan(static_cast<int32_t>(end), running_end, MaxOp{});
    running_end = max(running_end, carried_end);
    chunk_end[threadIdx.x] = running_end;
    __syncthreads();
    const int32_t begin = threadIdx.x == 0 ? carried_end : chunk_end[threadIdx.x - 1];
    const int32_t tiles = e < schedule.experts ? (running_end - begin + row_tile - 1) / row_tile : 0;
    int32_t tiles_before, chunk_tiles;
    __syncthreads();  // scan_storage is reused
    Scan(scan_storage).ExclusiveSum(tiles, tiles_before, chunk_tiles);
    if (e < schedule.experts) {
      schedule.row_begin[e] = begin;
      schedule.row_end[e] = running_end;
      schedule.tile_prefix[e] = carried_tiles + tiles_before;
    }
    __syncthreads();
    if (threadIdx.x == kScheduleThreads - 1) {
      carried_end = running_end;
      carried_tiles += chunk_tiles;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) schedule.tile_prefix[schedule.experts] = carried_tiles;
}

}  // namespace

void launch_expert_schedule(const void* group_end, bool group_end_is_int64, int64_t rows,
                            const ExpertSchedule& schedule, cudaStream_t stream) {
  launch_chained(expert_schedule_kernel, 1, kScheduleThreads, 0, stream, "expert_schedule_kernel", group_end,
                 group_end_is_int64, rows, schedule.row_tile, schedule);
}

}  // namespace moeq::cuda
