// Host helpers that turn a validated expert GEMM problem into the kernels' views.
#pragma once

#include "core/error.hpp"
#include "core/problems.hpp"
#include "dequant_tile.cuh"
#include "operand_views.cuh"

#include <limits>
#include <string>

namespace moeq::cuda {

// Row indices travel as int32 inside the schedule.
inline void expect_row_count_supported(const ExpertGemmShape& shape) {
  if (shape.rows > std::numeric_limits<int32_t>::max() ||
      shape.experts > std::numeric_limits<int32_t>::max())
    fail(MOEQ_ERR_UNSUPPORTED, "expert_gemm_lora on CUDA: at most 2^31 - 1 rows and experts, got M = " +
                                   std::to_string(shape.rows) + ", E = " +
                                   std::to_string(shape.experts));
}

// The weight as [E, D1, D2] with blocks along D2: D1 = N, D2 = K for [E, N, K].
inline QuantWeightView weight_view(const ExpertGemmCommon& common) {
  const bool out_in = common.layout == WeightLayout::ExpertOutIn;
  return make_quant_weight_view(common.weight,
                                out_in ? common.shape.out_features : common.shape.in_features,
                                out_in ? common.shape.in_features : common.shape.out_features);
}

// A [E, ., .] tensor read as (expert, index, depth) from its dims index_dim, depth_dim.
inline StridedView stacked_view(const StridedTensor& tensor, int index_dim, int depth_dim) {
  return StridedView{tensor.data, tensor.type, tensor.stride[0], tensor.stride[index_dim],
                     tensor.stride[depth_dim]};
}

// A row-major [M, r] matrix read as (0, row, column).
inline StridedView rank_rows_view(const void* data, ScalarType type, int64_t row_stride) {
  return StridedView{data, type, 0, row_stride, 1};
}

inline OutputView matrix_output(const StridedTensor& tensor) {
  return OutputView{tensor.data, tensor.type, 0, tensor.stride[0], 1};
}

inline OutputView stacked_output(const StridedTensor& tensor) {
  return OutputView{tensor.data, tensor.type, tensor.stride[0], tensor.stride[1], tensor.stride[2]};
}

}  // namespace moeq::cuda
