// Instantiations of the decode GEMMs (decode_gemm.cuh for W stored [E, N, K],
// decode_gemm_transposed.cuh for [E, K, N]) for the 16-bit activation dtypes.
#include "decode_gemm.cuh"
#include "decode_gemm_transposed.cuh"
#include "expert_gemm_launch.cuh"

#include <algorithm>

namespace moeq::cuda {

bool decode_gemm_serves(ScalarType activation, bool b_transposed, const RowsGemmParams& params) {
  // The weight's last dim is whole blocks of >= 32 elements (checked by the API), so
  // each lane's chunk (32 deep, or 16 features transposed) lies in one block; the
  // checks keep that explicit.
  const int64_t last_dim = params.weight.dim2;
  return activation != ScalarType::Float32 && params.rows.vector_aligned && params.weight.packed_aligned &&
         last_dim % kChunkElements == 0;
}

namespace {

// Blocks that fill the GPU about twice (4 blocks per SM on 132 SMs): fewer leave
// its memory system idle, so the depth is split until the grid reaches them.
constexpr int64_t kDecodeTargetBlocks = 1024;
// The mean rows per expert up to which the decode kernels are built for tiles
// of at most 8 rows (most tiles then fit: Poisson routing at a mean of 4 puts ~2% of
// the experts above 8 rows).
constexpr int64_t kOneRowGroupMeanRows = 4;
// Each split keeps at least this much depth (whole 128-deep macro steps).
constexpr int64_t kDecodeMinSplitDepth = 512;

int64_t decode_block_cols(bool b_transposed) { return b_transposed ? kDecodeTransposedCols : kDecodeCols; }

// Depth per split: all of it, or whole macro steps such that the grid of (row
// tiles, column tiles, splits) reaches kDecodeTargetBlocks. Each expert with rows
// has a tile, so min(experts, rows) estimates the tiles of a decode-sized call.
int64_t decode_split_depth(bool b_transposed, int64_t rows, int64_t experts, int64_t depth, int64_t cols) {
  const int64_t tiles = std::max<int64_t>(1, std::min(experts, rows));
  const int64_t col_tiles = ceil_div(cols, decode_block_cols(b_transposed));
  const int64_t wanted = ceil_div(kDecodeTargetBlocks, tiles * col_tiles);
  const int64_t splits = std::min(wanted, depth / kDecodeMinSplitDepth);
  if (splits <= 1) return depth;
  const int64_t per_split = ceil_div(depth, splits);
  return ceil_div(per_split, kDecodeMacroDepth) * kDecodeMacroDepth;
}

}  // namespace

size_t decode_gemm_workspace_bytes(bool b_transposed, int64_t rows, int64_t experts, int64_t depth, int64_t cols) {
  const int64_t split_depth = decode_split_depth(b_transposed, rows, experts, depth, cols);
  if (split_depth >= depth) return 0;
  return static_cast<size_t>(ceil_div(depth, split_depth) * rows * cols) * sizeof(float);
}

void launch_decode_gemm(ScalarType activation, bool b_transposed, const RowsGemmParams& params, int64_t rows,
                        int64_t row_tiles, float* split_partials, ChainEntry entry, cudaStream_t stream) {
  if (params.schedule.row_tile != kDecodeRowTile)
    fail(MOEQ_ERR_INTERNAL, "decode_gemm_kernel: schedule of " + std::to_string(params.schedule.row_tile) +
                                "-row tiles");
  const int64_t col_tiles = ceil_div(params.cols, decode_block_cols(b_transposed));
  if (row_tiles == 0 || col_tiles == 0) return;
  const int64_t split_depth =
      split_partials != nullptr
          ? decode_split_depth(b_transposed, rows, params.schedule.experts, params.depth, params.cols)
          : params.depth;
  const SplitPartials split{split_depth < params.depth ? split_partials : nullptr, rows, params.cols, split_depth};
  const int64_t splits = ceil_div(params.depth, split_depth);
  const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(col_tiles), static_cast<unsigned>(splits));
  // Tiles of at most 8 rows expected (a mean of at most kOneRowGroupMeanRows rows per
  // expert with rows): the [E, K, N] kernel built for one n8 row group, with more warps
  // per SM; a larger tile takes it two passes. (The [E, N, K] one built so, at 6 blocks
  // per SM, was 40% slower on Qwen3's 64-token gate_up: bench/RESULTS.md, eleventh pass.)
  const int64_t experts_with_rows = std::max<int64_t>(1, std::min<int64_t>(rows, params.schedule.experts));
  const bool one_row_group = rows <= kOneRowGroupMeanRows * experts_with_rows;
  const auto launch = [&](auto kernel) {
    launch_chained(kernel, grid, kDecodeThreads, 0, stream,
                   b_transposed ? "decode_gemm_transposed_kernel" : "decode_gemm_kernel", params, split, entry);
  };
  const auto launch_for = [&](auto tag) {
    using Activation = decltype(tag);
    if (b_transposed) {
      const auto instance = [&](auto lora, auto row_groups) {
        launch(decode_gemm_transposed_kernel<Activation, decltype(lora)::value, decltype(row_groups)::value>);
      };
      const auto row_groups = [&](auto lora) {
        if (one_row_group) instance(lora, std::integral_constant<int, 1>{});
        else instance(lora, std::integral_constant<int, 2>{});
      };
      if (params.rank > 0) row_groups(std::true_type{});
      else row_groups(std::false_type{});
    } else {
      const auto instance = [&](auto lora, auto deferred_scale) {
        launch(decode_gemm_kernel<Activation, decltype(lora)::value, decltype(deferred_scale)::value>);
      };
      const auto deferred_scale = [&](auto lora) {
        // Blocks of >= 64: the scale applied to sums.
        if (params.weight.blocksize_log2 >= 6) instance(lora, std::true_type{});
        else instance(lora, std::false_type{});
      };
      if (params.rank > 0) deferred_scale(std::true_type{});
      else deferred_scale(std::false_type{});
    }
  };
  if (activation == ScalarType::Float16) launch_for(Float16Bits{});
  else launch_for(BFloat16Bits{});
  if (split.split()) launch_split_reduce(params.schedule, params.out, split, splits, row_tiles, stream);
}

}  // namespace moeq::cuda
