// How the CPU expert GEMM splits its work: the rows each expert owns (from
// group_end) and the (expert, column tile) or (expert, row chunk) items that
// OpenMP threads take one at a time.
#pragma once

#include "core/problems.hpp"

#include <cstdint>
#include <vector>

namespace moeq::cpu {

// Rows [begin(e), end(e)) of x belong to expert e.
class ExpertRows {
 public:
  explicit ExpertRows(const ExpertGemmCommon& common);

  int64_t experts() const { return static_cast<int64_t>(bounds_.size()) - 1; }
  int64_t begin(int64_t expert) const { return bounds_[expert]; }
  int64_t end(int64_t expert) const { return bounds_[expert + 1]; }
  int64_t count(int64_t expert) const { return end(expert) - begin(expert); }
  // Rows before the last group_end: the only ones read or written.
  int64_t routed() const { return bounds_.back(); }
  int64_t experts_with_rows() const;

 private:
  std::vector<int64_t> bounds_;  // E + 1 entries, bounds_[0] = 0
};

// Columns [column_begin, column_begin + column_count) of one expert's result.
struct ExpertColumns {
  int64_t expert;
  int64_t column_begin;
  int64_t column_count;
};

// Widest column tile: bounds the per-thread scratch, and wide enough for BLAS to
// run near its peak on one thread.
constexpr int64_t kMaxTileColumns = 256;

// Tiles of the `columns` output columns of every expert with rows, for a GEMM
// contracting over `contraction`. Tiles are narrowed until there are several per
// thread, so few experts with many rows keep every core busy just as many experts
// with few rows do, and narrowed further for experts with few rows (see
// small_gemm_width in expert_work.cpp). Tiles begin at multiples of 16, so never
// between the two nibbles of a packed byte.
std::vector<ExpertColumns> output_tiles(const ExpertRows& rows, int64_t columns,
                                        int64_t contraction, int threads);

// Tiles of `columns` for every expert, with rows or not: LoRA gradients of experts
// without rows are zeroed.
std::vector<ExpertColumns> gradient_tiles(const ExpertRows& rows, int64_t columns, int threads);

// Rows [row_begin, row_begin + row_count) of one expert.
struct ExpertRowChunk {
  int64_t expert;
  int64_t row_begin;
  int64_t row_count;
};

// Rows handled by one call of the rank-r projections and one output chunk of the
// main GEMM: bounds scratch and keeps BLAS's packed panels in cache.
constexpr int64_t kRowChunk = 256;

std::vector<ExpertRowChunk> row_chunks(const ExpertRows& rows);

}  // namespace moeq::cpu
