// moeq::cuda::expert_gemm: y = x W^T + s (x A^T) B^T per expert, as three launches
// on the caller's stream: the schedule, the rank-r projection x A^T, and the
// dequantizing GEMM that adds the LoRA term (the Hopper wgmma GEMM where it serves,
// else the row-tiled mma.sync GEMM, or the decode GEMM for a few rows per expert).
#include "core/backend.hpp"
#include "expert_gemm_launch.cuh"
#include "expert_gemm_views.cuh"
#include "expert_workspace.cuh"
#include "wgmma_gemm.cuh"

namespace moeq::cuda {
namespace {

struct ForwardPlan {
  WorkspacePlan plan;
  size_t schedule = 0;
  size_t wgmma_schedule = 0;  // the Hopper GEMM's kWgmmaTokens-row tiles
  size_t x_lora_a = 0;  // float32 [M, r] when LoRA is on and the caller keeps no x_lora_a
  bool own_x_lora_a = false;
};

ForwardPlan plan_forward(const ExpertGemmProblem& problem) {
  const ExpertGemmShape& shape = problem.common.shape;
  ForwardPlan forward;
  forward.schedule = forward.plan.add(expert_schedule_bytes(shape.experts));
  forward.wgmma_schedule = forward.plan.add(expert_schedule_bytes(shape.experts));
  forward.own_x_lora_a = shape.rank > 0 && !problem.x_lora_a.present();
  if (forward.own_x_lora_a)
    forward.x_lora_a = forward.plan.add(static_cast<size_t>(shape.rows * shape.rank) * sizeof(float));
  return forward;
}

}  // namespace

size_t expert_gemm_workspace_bytes(const ExpertGemmProblem& problem) {
  return plan_forward(problem).plan.bytes();
}

void expert_gemm(const ExpertGemmProblem& problem, void* stream_handle) {
  const ExpertGemmCommon& common = problem.common;
  const ExpertGemmShape& shape = common.shape;
  expect_row_count_supported(shape);
  DeviceGuard guard(common.device_id);
  const cudaStream_t stream = as_stream(stream_handle);
  const ForwardPlan forward = plan_forward(problem);
  Scratch scratch(common.workspace, forward.plan.bytes(), stream);

  RowsGemmParams gemm{};
  gemm.rows = make_rows_view(common.x, shape.in_features);
  gemm.depth = shape.in_features;
  gemm.cols = shape.out_features;
  gemm.weight = weight_view(common);
  gemm.out = matrix_output(problem.y);
  const bool b_transposed = common.layout == WeightLayout::ExpertInOut;
  // The mean rows per expert picks the row tile; the host never reads the routing.
  const bool decode = shape.rows < kDecodeMeanRows * shape.experts &&
                      decode_gemm_serves(common.activation_type, b_transposed, gemm);
  gemm.schedule = expert_schedule_at(scratch.at(forward.schedule), shape.experts,
                                     decode ? kDecodeRowTile : kTrainingRowTile);
  launch_expert_schedule(common.group_end, common.group_end_is_int64, shape.rows, gemm.schedule, stream);
  const int64_t row_tiles = max_row_tiles(shape.rows, gemm.schedule);
  const bool hopper =
      !decode && wgmma_gemm_serves(common.activation_type, b_transposed, gemm, shape.rows, shape.experts);

  if (shape.rank > 0) {
    // x A^T, kept by the caller (x_lora_a) or in the workspace as float32.
    RowsGemmParams project = gemm;
    project.cols = shape.rank;
    project.factor = stacked_view(common.lora_a, 1, 2);
    project.out = forward.own_x_lora_a
                         ? OutputView{scratch.at(forward.x_lora_a), ScalarType::Float32, 0, shape.rank, 1}
                         : matrix_output(problem.x_lora_a);
    launch_lora_project(common.activation_type, project, row_tiles, stream);
    gemm.rank = shape.rank;
    gemm.lora_rows = rank_rows_view(project.out.data, project.out.type, project.out.row_stride);
    gemm.lora_scale = common.lora_scale;
    gemm.lora_weight = stacked_view(common.lora_b, 1, 2);
  }
  if (hopper) {
    const ExpertSchedule wide = expert_schedule_at(scratch.at(forward.wgmma_schedule), shape.experts, kWgmmaTokens);
    launch_expert_schedule(common.group_end, common.group_end_is_int64, shape.rows, wide, stream);
    launch_wgmma_gemm(common.activation_type, b_transposed, gemm, wide, shape.rows, shape.experts, stream);
  } else if (decode) launch_decode_gemm(common.activation_type, b_transposed, gemm, row_tiles, stream);
  else launch_dequant_gemm(common.activation_type, b_transposed, gemm, row_tiles, stream);
}

}  // namespace moeq::cuda
