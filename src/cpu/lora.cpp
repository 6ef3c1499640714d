// LoRA projections and gradients of the CPU expert GEMM, threaded with OpenMP.
#include "cpu/lora.hpp"

#include "cpu/blas.hpp"
#include "cpu/parallel.hpp"

#include <algorithm>
#include <vector>

namespace moeq::cpu {

Float32Rows rank_projection(const Float32Rows& input, int64_t columns, const ExpertRows& rows,
                            int64_t rank, const StridedTensor& stack, bool transposed) {
  std::vector<float> projected(static_cast<size_t>(rows.routed() * rank));
  const std::vector<ExpertRowChunk> chunks = row_chunks(rows);
  const int64_t chunk_count = static_cast<int64_t>(chunks.size());
  const int threads =
      threads_for(2.0 * static_cast<double>(rows.routed() * columns * rank), chunk_count);
  ThreadScratch factors(columns * rank, threads);
  float* out = projected.data();
#pragma omp parallel num_threads(threads)
  {
    // Chunks of one expert are handed out in a row: gather its factor once per run.
    int64_t gathered_expert = -1;
    float* factor = factors.mine();
#pragma omp for schedule(dynamic)
    for (int64_t c = 0; c < chunk_count; ++c) {
      const ExpertRowChunk chunk = chunks[c];
      if (chunk.expert != gathered_expert) {
        gather_float32(expert_matrix(stack, chunk.expert, transposed), columns, rank, factor, rank);
        gathered_expert = chunk.expert;
      }
      sgemm(chunk.row_count, rank, columns, 1.0f, {input.row(chunk.row_begin), input.stride()},
            {factor, rank}, 0.0f, out + chunk.row_begin * rank, rank);
    }
  }
  return Float32Rows(std::move(projected), rank);
}

void rank_gradient(const Float32Rows& rank_rows, int64_t rank, const Float32Rows& input,
                   int64_t columns, const ExpertRows& rows, float scale,
                   const StridedTensor& gradient, bool transposed) {
  const std::vector<ExpertColumns> tiles = gradient_tiles(rows, columns, omp_get_max_threads());
  const int64_t tile_count = static_cast<int64_t>(tiles.size());
  // Zeroing the experts without rows is work too: count it like a row each.
  const double flops = 2.0 * static_cast<double>((rows.routed() + rows.experts()) * columns * rank);
  const int threads = threads_for(flops, tile_count);
  ThreadScratch results(rank * kMaxTileColumns, threads);
#pragma omp parallel for num_threads(threads) schedule(dynamic)
  for (int64_t t = 0; t < tile_count; ++t) {
    const ExpertColumns tile = tiles[t];
    float* result = results.mine();
    const int64_t first_row = rows.begin(tile.expert);
    const int64_t row_count = rows.count(tile.expert);
    if (row_count == 0) {
      std::fill(result, result + rank * tile.column_count, 0.0f);
    } else {
      sgemm(rank, tile.column_count, row_count, scale,
            {rank_rows.row(first_row), rank_rows.stride(), /*transposed=*/true},
            {input.row(first_row) + tile.column_begin, input.stride()}, 0.0f, result,
            tile.column_count);
    }
    scatter_float32(result, tile.column_count, rank, tile.column_count,
                    expert_matrix(gradient, tile.expert, transposed).from(0, tile.column_begin));
  }
}

}  // namespace moeq::cpu
