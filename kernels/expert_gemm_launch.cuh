// Host entry points of the expert GEMM kernels, one per kernel family; the
// forward and backward passes are sequences of these launches.
#pragma once

#include "chained_launch.cuh"
#include "core/scalar.hpp"
#include "expert_rows_gemm.cuh"
#include "lora_grad.cuh"

#include <cuda_runtime.h>

namespace moeq::cuda {

// y = x W^T (+ s (x A^T) B^T) or dX = dY W (+ s (dY B) A): B tiles stored
// [depth][column] when the weight's middle dim is the reduced one.
void launch_dequant_gemm(ScalarType activation, bool b_transposed, const RowsGemmParams& params,
                         int64_t row_tiles, cudaStream_t stream);

// The decode GEMMs (y = x W^T + s (x A^T) B^T over a schedule of kDecodeRowTile-row
// tiles) and the calls they serve: W stored [E, N, K] or (b_transposed) [E, K, N],
// 16-bit activations, aligned rows and weight.
// Calls whose grid would leave the GPU idle split their depth: the partial sums go
// to split_partials (decode_gemm_workspace_bytes of workspace for M = rows; null:
// no split) and a reduction adds them in order. `entry`: WaitBeforeWrites only when
// the launch just before this one (the LoRA projection) wrote nothing but
// params.lora_rows (chained_launch.cuh), so the products overlap its end.
bool decode_gemm_serves(ScalarType activation, bool b_transposed, const RowsGemmParams& params);
size_t decode_gemm_workspace_bytes(bool b_transposed, int64_t rows, int64_t experts, int64_t depth, int64_t cols);
void launch_decode_gemm(ScalarType activation, bool b_transposed, const RowsGemmParams& params, int64_t rows,
                        int64_t row_tiles, float* split_partials, ChainEntry entry, cudaStream_t stream);

// The Hopper GEMM (wgmma_gemm.cuh) for y = x W^T + s (x A^T) B^T: whether it serves
// the call (a compute capability 9.0 device, 16-bit activations and output, x and
// the packed weight describable by TMA), and its launch over
// `schedule`, built with kWgmmaTokens-row tiles.
bool wgmma_gemm_serves(ScalarType activation, bool b_transposed, const RowsGemmParams& params, int64_t rows,
                       int64_t experts);
void launch_wgmma_gemm(ScalarType activation, bool b_transposed, const RowsGemmParams& params,
                       const ExpertSchedule& schedule, int64_t rows, int64_t experts, cudaStream_t stream);

// x A^T or dY B into float32 / activation-dtype outputs [M, r] (M = rows), for a
// schedule of kTrainingRowTile or kDecodeRowTile rows. With the decode schedule,
// split_partials (lora_project_workspace_bytes of workspace, or null) lets the
// projection split its depth over many warps.
size_t lora_project_workspace_bytes(int64_t rows, int64_t depth, int64_t rank);
void launch_lora_project(ScalarType activation, const RowsGemmParams& params, int64_t rows, int64_t row_tiles,
                         float* split_partials, cudaStream_t stream);

// dA or dB: a reduction over each expert's rows. left_strided: the left operand is
// a strided rank-r intermediate (dA = s g^T x); else it is activation rows (dB = s dY^T xa).
void launch_lora_grad(ScalarType activation, bool left_strided, const LoraGradParams& params,
                      cudaStream_t stream);

}  // namespace moeq::cuda
