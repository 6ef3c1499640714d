// Expert row ranges and the work items of the CPU expert GEMM.
#include "cpu/expert_work.hpp"

#include <algorithm>

namespace moeq::cpu {

// group_end was checked on the CPU (non-decreasing, <= M); clamping anyway keeps a
// malformed one from ever reaching memory outside x and y.
ExpertRows::ExpertRows(const ExpertGemmCommon& common) : bounds_(1, 0) {
  const int64_t experts = common.shape.experts;
  bounds_.reserve(static_cast<size_t>(experts + 1));
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t end = common.group_end_is_int64
                            ? static_cast<const int64_t*>(common.group_end)[e]
                            : static_cast<const int32_t*>(common.group_end)[e];
    bounds_.push_back(std::clamp(end, bounds_.back(), common.shape.rows));
  }
}

int64_t ExpertRows::largest_count() const {
  int64_t largest = 0;
  for (int64_t e = 0; e < experts(); ++e) largest = std::max(largest, count(e));
  return largest;
}

int64_t ExpertRows::experts_with_rows() const {
  int64_t with_rows = 0;
  for (int64_t e = 0; e < experts(); ++e) with_rows += count(e) > 0 ? 1 : 0;
  return with_rows;
}

std::vector<ExpertColumns> column_tiles(const ExpertRows& rows, int64_t columns, int threads,
                                        bool every_expert) {
  constexpr int64_t kItemsPerThread = 4;  // enough for dynamic scheduling to even out
  constexpr int64_t kMinTileColumns = 64;
  constexpr int64_t kAlignment = 16;
  const int64_t experts = every_expert ? rows.experts() : rows.experts_with_rows();
  const int64_t tiles_per_expert = std::max<int64_t>(
      1, (kItemsPerThread * threads + experts - 1) / std::max<int64_t>(experts, 1));
  int64_t width = (columns + tiles_per_expert - 1) / tiles_per_expert;
  width = (width + kAlignment - 1) / kAlignment * kAlignment;
  width = std::clamp(width, kMinTileColumns, kMaxTileColumns);

  std::vector<ExpertColumns> tiles;
  for (int64_t e = 0; e < rows.experts(); ++e) {
    if (!every_expert && rows.count(e) == 0) continue;
    for (int64_t begin = 0; begin < columns; begin += width)
      tiles.push_back({e, begin, std::min(width, columns - begin)});
  }
  return tiles;
}

std::vector<ExpertRowChunk> row_chunks(const ExpertRows& rows) {
  std::vector<ExpertRowChunk> chunks;
  for (int64_t e = 0; e < rows.experts(); ++e)
    for (int64_t begin = 0; begin < rows.count(e); begin += kRowChunk)
      chunks.push_back({e, rows.begin(e) + begin, std::min(kRowChunk, rows.count(e) - begin)});
  return chunks;
}

}  // namespace moeq::cpu
