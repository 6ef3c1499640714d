// Instantiations of the rank-r projections x A^T and dY B for every activation dtype:
// the bandwidth kernels (lora_rows_project.cuh for the training schedule,
// lora_split_project.cuh for the decode one) where they serve, else the row-tiled GEMM.
#include "expert_gemm_launch.cuh"
#include "lora_rows_project.cuh"
#include "lora_split_project.cuh"

#include <type_traits>

namespace moeq::cuda {

size_t lora_project_workspace_bytes(int64_t rows, int64_t depth, int64_t rank) {
  return lora_split_project_bytes(rows, depth, rank);
}

void launch_lora_project(ScalarType activation, const RowsGemmParams& params, int64_t rows, int64_t row_tiles,
                         float* split_partials, cudaStream_t stream) {
  dispatch_scalar(activation, [&](auto tag) {
    using Activation = decltype(tag);
    if constexpr (!std::is_same_v<Activation, float>) {
      if (lora_rows_project_serves(activation, params)) {
        launch_lora_rows_project<Activation>(params, row_tiles, stream);
        return;
      }
      if (split_partials != nullptr && lora_split_project_serves(activation, params)) {
        launch_lora_split_project<Activation>(params, rows, row_tiles, split_partials, stream);
        return;
      }
    }
    if (params.schedule.row_tile == kDecodeRowTile)
      launch_rows_gemm<Activation, DecodeProjectShape, false, false, false>(params, row_tiles, stream);
    else
      launch_rows_gemm<Activation, TrainingProjectShape, false, false, false>(params, row_tiles, stream);
  });
}

}  // namespace moeq::cuda
