// Instantiations of the decode GEMMs (decode_gemm.cuh for W stored [E, N, K],
// decode_gemm_transposed.cuh for [E, K, N]) for the 16-bit activation dtypes.
#include "decode_gemm.cuh"
#include "decode_gemm_transposed.cuh"
#include "expert_gemm_launch.cuh"

namespace moeq::cuda {

bool decode_gemm_serves(ScalarType activation, bool b_transposed, const RowsGemmParams& params) {
  // The weight's last dim is whole blocks of >= 32 elements (checked by the API), so
  // each lane's chunk (32 deep, or 16 features transposed) lies in one block; the
  // checks keep that explicit.
  const int64_t last_dim = params.weight.dim2;
  return activation != ScalarType::Float32 && params.rows.vector_aligned && params.weight.packed_aligned &&
         last_dim % kChunkElements == 0;
}

void launch_decode_gemm(ScalarType activation, bool b_transposed, const RowsGemmParams& params, int64_t row_tiles,
                        cudaStream_t stream) {
  if (params.schedule.row_tile != kDecodeRowTile)
    fail(MOEQ_ERR_INTERNAL, "decode_gemm_kernel: schedule of " + std::to_string(params.schedule.row_tile) +
                                "-row tiles");
  const int64_t block_cols = b_transposed ? kDecodeTransposedCols : kDecodeCols;
  const int64_t col_tiles = (params.cols + block_cols - 1) / block_cols;
  if (row_tiles == 0 || col_tiles == 0) return;
  const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(col_tiles));
  const auto launch = [&](auto kernel) {
    kernel<<<grid, kDecodeThreads, 0, stream>>>(params);
    check_launch(b_transposed ? "decode_gemm_transposed_kernel" : "decode_gemm_kernel");
  };
  const auto launch_for = [&](auto tag) {
    using Activation = decltype(tag);
    if (b_transposed) {
      if (params.rank > 0) launch(decode_gemm_transposed_kernel<Activation, true>);
      else launch(decode_gemm_transposed_kernel<Activation, false>);
    } else {
      if (params.rank > 0) launch(decode_gemm_kernel<Activation, true>);
      else launch(decode_gemm_kernel<Activation, false>);
    }
  };
  if (activation == ScalarType::Float16) launch_for(Float16Bits{});
  else launch_for(BFloat16Bits{});
}

}  // namespace moeq::cuda
