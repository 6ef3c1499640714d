// Instantiations of the rank-r projections x A^T and dY B for every activation dtype:
// the bandwidth kernel (lora_rows_project.cuh) where it serves, else the row-tiled GEMM.
#include "expert_gemm_launch.cuh"
#include "lora_rows_project.cuh"

#include <type_traits>

namespace moeq::cuda {

void launch_lora_project(ScalarType activation, const RowsGemmParams& params, int64_t row_tiles,
                         cudaStream_t stream) {
  dispatch_scalar(activation, [&](auto tag) {
    using Activation = decltype(tag);
    if constexpr (!std::is_same_v<Activation, float>) {
      if (lora_rows_project_serves(activation, params)) {
        launch_lora_rows_project<Activation>(params, row_tiles, stream);
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
