// The (expert, row tile) work list, built on the device from group_end: each
// expert's clamped row range and a prefix sum of its row tiles, so a block finds
// its work item without the host ever reading the routing.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace moeq::cuda {

// Device arrays of a schedule (in the workspace): for expert e, rows
// [row_begin[e], row_end[e]) and row tiles of row_tile rows [tile_prefix[e], tile_prefix[e + 1]).
struct ExpertSchedule {
  int32_t* row_begin;
  int32_t* row_end;
  int32_t* tile_prefix;
  int32_t experts;
  int32_t row_tile;
};

inline size_t expert_schedule_bytes(int64_t experts) {
  return static_cast<size_t>(3 * experts + 1) * sizeof(int32_t);
}

inline ExpertSchedule expert_schedule_at(void* memory, int64_t experts, int row_tile) {
  int32_t* base = static_cast<int32_t*>(memory);
  return ExpertSchedule{base, base + experts, base + 2 * experts, static_cast<int32_t>(experts),
                        row_tile};
}

// Row tiles a launch must cover: sum over experts of ceil(rows_e / row_tile) is at
// most floor(M / row_tile) + E, whatever the routing.
inline int64_t max_row_tiles(int64_t rows, const ExpertSchedule& schedule) {
  return rows / schedule.row_tile + schedule.experts;
}

// Fills `schedule` from group_end (int32 or int64, E entries). Ends are clamped to
// [0, rows] and made non-decreasing (a running maximum), so an entry below its
// predecessor gives an empty expert and row ranges never overlap.
void launch_expert_schedule(const void* group_end, bool group_end_is_int64, int64_t rows,
                            const ExpertSchedule& schedule, cudaStream_t stream);

// The work item of row tile `tile`: false when the tile is past the last one.
__device__ __forceinline__ bool find_row_tile(const ExpertSchedule& schedule, int64_t tile,
                                              int row_tile, int32_t* expert, int64_t* row0,
                                              int64_t* row_end) {
  if (tile >= schedule.tile_prefix[schedule.experts]) return false;
  // The last expert whose first tile is <= tile (experts without tiles share
  // their prefix with the next one and are skipped by taking the last).
  int32_t low = 0;
  int32_t high = schedule.experts - 1;
  while (low < high) {
    const int32_t middle = (low + high + 1) / 2;
    if (schedule.tile_prefix[middle] <= tile) low = middle;
    else high = middle - 1;
  }
  *expert = low;
  *row0 = schedule.row_begin[low] + (tile - schedule.tile_prefix[low]) * row_tile;
  *row_end = schedule.row_end[low];
  return true;
}

}  // namespace moeq::cuda
