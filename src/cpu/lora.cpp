// LoRA projections and gradients of the CPU expert GEMM, threaded with OpenMP.
#include "cpu/lora.hpp"

#include "cpu/blas.hpp"
#include "cpu/thread_scratch.hpp"

#include <algorithm>
#include <vector>

namespace moeq::cpu {

Float32Rows rank_projection(const Float32Rows& input, int64_t columns, const ExpertRows& rows,
                            int64_t rank, const StridedTensor& stack, bool transposed) {
  std::vector<float> projected(static_cast<size_t>(rows.routed() * rank));
  ThreadScratch factors(columns * rank);
  const std::vector<ExpertRowChunk> chunks = row_chunks(rows);
  const int64_t chunk_count = static_cast<int64_t>(chunks.size());
  float* out = projected.data();
#pragma omp parallel num_threads(factors.threads())
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
  ThreadScratch results(rank * kMaxTileColumns);
  const std::vector<ExpertColumns> tiles =
      column_tiles(rows, columns, results.threads(), /*every_expert=*/true);
  const int64_t tile_count = static_cast<int64_t>(tiles.size());
#pragma omp parallel for num_threads(results.threads()) schedule(dynamic)
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
