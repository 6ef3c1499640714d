// The threaded per-expert GEMM of the CPU backend: dequantize a weight tile into
// per-thread float32 scratch, multiply with BLAS, add the rank-r LoRA term.
#include "cpu/expert_product.hpp"

#include "cpu/blas.hpp"
#include "cpu/parallel.hpp"

#include <algorithm>
#include <vector>

namespace moeq::cpu {
namespace {

// W_e' restricted to output columns [begin, begin + count), as a BLAS operand of
// shape [contraction, count].
GemmOperand dequantize_weight_tile(const ExpertWeight& weight, const ExpertProduct& product,
                                   const ExpertColumns& tile, float* scratch) {
  if (product.output_along_storage_rows) {
    weight.dequantize_tile(tile.expert, tile.column_begin, tile.column_count, 0,
                           product.contraction, scratch);
    return {scratch, product.contraction, /*transposed=*/true};
  }
  weight.dequantize_tile(tile.expert, 0, product.contraction, tile.column_begin, tile.column_count,
                         scratch);
  return {scratch, tile.column_count, /*transposed=*/false};
}

}  // namespace

void run_expert_product(const ExpertProduct& product, const ExpertWeight& weight,
                        const ExpertRows& rows) {
  // A float32 output is written by BLAS in place; others go through a chunk of scratch.
  const bool in_place = product.output.float32_row_major() != nullptr;
  const std::vector<ExpertColumns> tiles =
      output_tiles(rows, product.output_columns, product.contraction, omp_get_max_threads());
  const int64_t tile_count = static_cast<int64_t>(tiles.size());
  // Dequantizing a weight element costs about what BLAS does in 24 flops (0.3 ns
  // against ~80 GFLOP/s per core), which dominates when few rows are routed.
  constexpr double kDequantizeFlops = 24.0;
  const double weight_elements = static_cast<double>(rows.experts_with_rows()) *
                                 static_cast<double>(product.output_columns) *
                                 static_cast<double>(product.contraction);
  const double flops = 2.0 * static_cast<double>(rows.routed()) *
                           static_cast<double>(product.output_columns) *
                           static_cast<double>(product.contraction + product.rank) +
                       kDequantizeFlops * weight_elements;
  const int threads = threads_for(flops, tile_count);
  ThreadScratch weight_tiles(product.contraction * kMaxTileColumns, threads);
  ThreadScratch update_tiles(product.rank * kMaxTileColumns, threads);
  ThreadScratch output_chunks(in_place ? 0 : kRowChunk * kMaxTileColumns, threads);
#pragma omp parallel for num_threads(threads) schedule(dynamic)
  for (int64_t t = 0; t < tile_count; ++t) {
    const ExpertColumns tile = tiles[t];
    const int64_t width = tile.column_count;
    const GemmOperand weight_tile =
        dequantize_weight_tile(weight, product, tile, weight_tiles.mine());
    float* update_tile = update_tiles.mine();
    if (product.rank_rows != nullptr)
      gather_float32(expert_matrix(*product.update, tile.expert, product.update_transposed)
                         .from(0, tile.column_begin),
                     product.rank, width, update_tile, width);

    for (int64_t row = rows.begin(tile.expert); row < rows.end(tile.expert); row += kRowChunk) {
      const int64_t chunk_rows = std::min(kRowChunk, rows.end(tile.expert) - row);
      const MatrixSlice out = product.output.from(row, tile.column_begin);
      float* result = in_place ? out.float32_row_major() : output_chunks.mine();
      const int64_t result_stride = in_place ? out.row_stride : width;
      sgemm(chunk_rows, width, product.contraction, 1.0f,
            {product.input->row(row), product.input->stride()}, weight_tile, 0.0f, result,
            result_stride);
      if (product.rank_rows != nullptr)
        sgemm(chunk_rows, width, product.rank, product.scale,
              {product.rank_rows->row(row), product.rank_rows->stride()}, {update_tile, width},
              1.0f, result, result_stride);
      if (!in_place) scatter_float32(result, result_stride, chunk_rows, width, out);
    }
  }
}

}  // namespace moeq::cpu
