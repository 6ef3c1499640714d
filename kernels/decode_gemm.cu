// Instantiations of the decode GEMM for the 16-bit activation dtypes.
#include "decode_gemm.cuh"
#include "expert_gemm_launch.cuh"

namespace moeq::cuda {

bool decode_gemm_serves(ScalarType activation, bool b_transposed, const RowsGemmParams& params) {
  // The weight's last dim is whole blocks of >= 32 elements (checked by the API), so
  // each lane's 32-deep chunk lies in one block; the depth check keeps that explicit.
  return activation != ScalarType::Float32 && !b_transposed && params.rows.vector_aligned &&
         params.weight.packed_aligned && params.depth % kChunkElements == 0;
}

void launch_decode_gemm(ScalarType activation, const RowsGemmParams& params, int64_t row_tiles,
                        cudaStream_t stream) {
  if (params.schedule.row_tile != kDecodeRowTile)
    fail(MOEQ_ERR_INTERNAL, "decode_gemm_kernel: schedule of " + std::to_string(params.schedule.row_tile) +
                                "-row tiles");
  const int64_t col_tiles = (params.cols + kDecodeCols - 1) / kDecodeCols;
  if (row_tiles == 0 || col_tiles == 0) return;
  const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(col_tiles));
  const auto launch = [&](auto kernel) {
    kernel<<<grid, kDecodeThreads, 0, stream>>>(params);
    check_launch("decode_gemm_kernel");
  };
  const auto launch_for = [&](auto tag) {
    using Activation = decltype(tag);
    if (params.rank > 0) launch(decode_gemm_kernel<Activation, true>);
    else launch(decode_gemm_kernel<Activation, false>);
  };
  if (activation == ScalarType::Float16) launch_for(Float16Bits{});
  else launch_for(BFloat16Bits{});
}

}  // namespace moeq::cuda
