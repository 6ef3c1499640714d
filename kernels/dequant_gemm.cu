// Instantiations of the dequantizing GEMM (y = x W^T + LoRA, dX = dY W + LoRA) for
// every activation dtype and both weight orientations.
#include "expert_gemm_launch.cuh"

namespace moeq::cuda {

void launch_dequant_gemm(ScalarType activation, bool b_transposed, const RowsGemmParams& params,
                         int64_t row_tiles, cudaStream_t stream) {
  dispatch_scalar(activation, [&](auto tag) {
    using Activation = decltype(tag);
    if (b_transposed)
      launch_rows_gemm<Activation, DequantGemmShape, true, true, true>(params, row_tiles, stream);
    else
      launch_rows_gemm<Activation, DequantGemmShape, true, false, true>(params, row_tiles, stream);
  });
}

}  // namespace moeq::cuda
