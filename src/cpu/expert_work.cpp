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

int64_t ExpertRows::experts_with_rows() const {
  int64_t with_rows = 0;
  for (int64_t e = 0; e < experts(); ++e) with_rows += count(e) > 0 ? 1 : 0;
  return with_rows;
}

namespace {

constexpr int64_t kTileAlignment = 16;

int64_t round_down_to_alignment(int64_t width) { return width / kTileAlignment * kTileAlignment; }

// The widest tile that still gives every thread several of the `tiled_experts`'
// tiles to take, so dynamic scheduling evens out the load.
int64_t balanced_width(int64_t columns, int64_t tiled_experts, int threads) {
  constexpr int64_t kItemsPerThread = 4;
  constexpr int64_t kMinTileColumns = 64;
  const int64_t experts = std::max<int64_t>(tiled_experts, 1);
  const int64_t tiles_per_expert =
      std::max<int64_t>(1, (kItemsPerThread * threads + experts - 1) / experts);
  const int64_t width = (columns + tiles_per_expert - 1) / tiles_per_expert;
  return std::clamp(round_down_to_alignment(width + kTileAlignment - 1), kMinTileColumns,
                    kMaxTileColumns);
}

// OpenBLAS multiplies problems with m * n * k <= 1e6 without packing its operands
// (its small-matrix kernels on AVX-512 x86-64 and on arm64). For experts with few
// rows, where packing dominates, that is 3-8x faster (OpenBLAS 0.3.21, m = 4..64,
// k = 768..2048); where those kernels are absent a narrower tile costs nothing,
// since packing is proportional to the tile. 0: the expert has too many rows.
int64_t small_gemm_width(int64_t expert_rows, int64_t contraction) {
  constexpr double kSmallGemmVolume = 1e6;
  return round_down_to_alignment(
      static_cast<int64_t>(kSmallGemmVolume / static_cast<double>(expert_rows * contraction)));
}

void append_tiles(std::vector<ExpertColumns>& tiles, int64_t expert, int64_t columns,
                  int64_t width) {
  for (int64_t begin = 0; begin < columns; begin += width)
    tiles.push_back({expert, begin, std::min(width, columns - begin)});
}

}  // namespace

std::vector<ExpertColumns> output_tiles(const ExpertRows& rows, int64_t columns,
                                        int64_t contraction, int threads) {
  const int64_t width = balanced_width(columns, rows.experts_with_rows(), threads);
  std::vector<ExpertColumns> tiles;
  for (int64_t e = 0; e < rows.experts(); ++e) {
    if (rows.count(e) == 0) continue;
    const int64_t small_width = small_gemm_width(rows.count(e), contraction);
    append_tiles(tiles, e, columns, small_width > 0 ? std::min(width, small_width) : width);
  }
  return tiles;
}

std::vector<ExpertColumns> gradient_tiles(const ExpertRows& rows, int64_t columns, int threads) {
  const int64_t width = balanced_width(columns, rows.experts(), threads);
  std::vector<ExpertColumns> tiles;
  for (int64_t e = 0; e < rows.experts(); ++e) append_tiles(tiles, e, columns, width);
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
