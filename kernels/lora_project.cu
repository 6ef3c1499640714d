// Instantiations of the rank-r projections x A^T and dY B for every activation dtype.
#include "expert_gemm_launch.cuh"

namespace moeq::cuda {

void launch_lora_project(ScalarType activation, const RowsGemmParams& params, int64_t row_tiles,
                         cudaStream_t stream) {
  dispatch_scalar(activation, [&](auto tag) {
    using Activation = decltype(tag);
    if (params.schedule.row_tile == kDecodeRowTile)
      launch_rows_gemm<Activation, DecodeProjectShape, false, false, false>(params, row_tiles, stream);
    else
      launch_rows_gemm<Activation, TrainingProjectShape, false, false, false>(params, row_tiles, stream);
  });
}

}  // namespace moeq::cuda
