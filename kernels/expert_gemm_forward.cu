// moeq::cuda::expert_gemm: y = x W^T + s (x A^T) B^T per expert, as three launches
// on the caller's stream: the schedule, the rank-r projection x A^T, and the
// dequantizing GEMM that adds the LoRA term (the Hopper wgmma GEMM where it serves,
// else the row-tiled mma.sync GEMM, or the decode GEMM for a few rows per expert).
#include "core/backend.hpp"
#include "expert_gemm_launch.cuh"
#include "expert_gemm_views.cuh"
#include "expert_workspace.cuh"
#include "wgmma_gemm.cuh"

#include <algorithm>

namespace moeq::cuda {
namespace {

struct ForwardPlan {
  WorkspacePlan plan;
  size_t schedule = 0;
  size_t wgmma_schedule = 0;  // the Hopper GEMM's kWgmmaTokens-row tiles
  size_t x_lora_a = 0;  // float32 [M, r] when LoRA is on and the caller keeps no x_lora_a
  size_t split_partials = 0;  // decode-sized x A^T's and then the GEMM's depth-split partial sums
  bool own_x_lora_a = false;
  bool decode_rows = false;  // few rows per expert: the decode row tile
};

ForwardPlan plan_forward(const ExpertGemmProblem& problem) {
  const ExpertGemmShape& shape = problem.common.shape;
  ForwardPlan forward;
  forward.schedule = forward.plan.add(expert_schedule_bytes(shape.experts));
  forward.wgmma_schedule = forward.plan.add(expert_schedule_bytes(shape.experts));
  forward.own_x_lora_a = shape.rank > 0 && !problem.x_lora_a.present();
  if (forward.own_x_lora_a)
    forward.x_lora_a = forward.plan.add(static_cast<size_t>(shape.rows * shape.rank) * sizeof(float));
  // The mean rows per expert picks the row tile; the host never reads the routing.
  forward.decode_rows = shape.rows < kDecodeMeanRows * shape.experts;
  // The projection's partials are reduced before the GEMM starts: one region serves both.
  const bool b_transposed = problem.common.layout == WeightLayout::ExpertInOut;
  if (forward.decode_rows)
    forward.split_partials = forward.plan.add(std::max(
        lora_project_workspace_bytes(shape.rows, shape.in_features, shape.rank),
        decode_gemm_workspace_bytes(b_transposed, shape.rows, shape.experts, shape.in_features, shape.out_features)));
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
  float* split_partials = forward.decode_rows ? static_cast<float*>(scratch.at(forward.split_partials)) : nullptr;

  RowsGemmParams gemm{};
  gemm.rows = make_rows_view(common.x, shape.in_features);
  gemm.depth = shape.in_features;
  gemm.cols = shape.out_features;
  gemm.weight = weight_view(common);
  gemm.out = matrix_output(problem.y);
  const bool b_transposed = common.layout == WeightLayout::ExpertInOut;
  const bool decode = forward.decode_rows && decode_gemm_serves(common.activation_type, b_transposed, gemm);
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
    launch_lora_project(common.activation_type, project, shape.rows, row_tiles, split_partials, stream);
    gemm.rank = shape.rank;
    gemm.lora_rows = rank_rows_view(project.out.data, project.out.type, project.out.row_stride);
    gemm.lora_scale = common.lora_scale;
    gemm.lora_weight = stacked_view(common.lora_b, 1, 2);
  }
  if (hopper) {
    const ExpertSchedule wide = expert_schedule_at(scratch.at(forward.wgmma_schedule), shape.experts, kWgmmaTokens);
    launch_expert_schedule(common.group_end, common.group_end_is_int64, shape.rows, wide, stream);
    launch_wgmma_gemm(common.activation_type, b_transposed, gemm, wide, shape.rows, shape.experts, stream);
  } else if (decode) {
    // With LoRA, x A^T was the last launch and wrote only gemm.lora_rows.
    const ChainEntry entry = shape.rank > 0 ? ChainEntry::WaitBeforeWrites : ChainEntry::WaitFirst;
    launch_decode_gemm(common.activation_type, b_transposed, gemm, shape.rows, row_tiles, split_partials, entry,
                       stream);
  }
  else launch_dequant_gemm(common.activation_type, b_transposed, gemm, row_tiles, stream);
}

}  // namespace moeq::cuda
