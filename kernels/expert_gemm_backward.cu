// moeq::cuda::expert_gemm_backward, per expert e and each output only when asked:
//   g = dY_e B_e                          (rank-r projection, float32 workspace)
//   grad_x_e = dY_e W_e + s g A_e         (the dequantizing GEMM, weight read transposed)
//   xa = x_e A_e^T                        (unless the forward's x_lora_a is given)
//   grad_lora_a_e = s g^T x_e, grad_lora_b_e = s dY_e^T xa   (reductions over rows)
#include "core/backend.hpp"
#include "expert_gemm_launch.cuh"
#include "expert_gemm_views.cuh"
#include "expert_workspace.cuh"
#include "wgmma_gemm.cuh"

#include <algorithm>

namespace moeq::cuda {
namespace {

struct BackwardPlan {
  WorkspacePlan plan;
  size_t schedule = 0;
  size_t gemm_schedule = 0;  // grad_x's own tiles: the Hopper GEMM's or the decode GEMM's
  size_t grad_y_lora_b = 0;  // g = dY B, float32 [M, r]
  size_t x_lora_a = 0;       // xa = x A^T, float32 [M, r]
  size_t split_partials = 0;  // decode-sized projections' and grad_x's depth-split partial sums, in turn
  bool need_grad_y_lora_b = false;
  bool own_x_lora_a = false;
  bool decode_rows = false;  // few rows per expert: grad_x and the projections take 16-row tiles
};

BackwardPlan plan_backward(const ExpertGemmGradProblem& problem) {
  const ExpertGemmShape& shape = problem.common.shape;
  const size_t rank_matrix_bytes = static_cast<size_t>(shape.rows * shape.rank) * sizeof(float);
  BackwardPlan backward;
  backward.schedule = backward.plan.add(expert_schedule_bytes(shape.experts));
  backward.gemm_schedule = backward.plan.add(expert_schedule_bytes(shape.experts));
  backward.need_grad_y_lora_b =
      shape.rank > 0 && (problem.grad_x.present() || problem.grad_lora_a.present());
  if (backward.need_grad_y_lora_b) backward.grad_y_lora_b = backward.plan.add(rank_matrix_bytes);
  backward.own_x_lora_a = problem.grad_lora_b.present() && !problem.x_lora_a.present();
  if (backward.own_x_lora_a) backward.x_lora_a = backward.plan.add(rank_matrix_bytes);
  backward.decode_rows = shape.rows < kDecodeMeanRows * shape.experts;
  // The launches run in stream order and each reduces its partials before the next
  // starts: one region serves them all.
  const bool b_transposed = problem.common.layout == WeightLayout::ExpertOutIn;
  if (backward.decode_rows)
    backward.split_partials = backward.plan.add(std::max(
        {lora_project_workspace_bytes(shape.rows, shape.out_features, shape.rank),
         lora_project_workspace_bytes(shape.rows, shape.in_features, shape.rank),
         problem.grad_x.present() ? decode_gemm_workspace_bytes(b_transposed, shape.rows, shape.experts,
                                                                 shape.out_features, shape.in_features)
                                  : size_t{0}}));
  return backward;
}

}  // namespace

size_t expert_gemm_backward_workspace_bytes(const ExpertGemmGradProblem& problem) {
  return plan_backward(problem).plan.bytes();
}

void expert_gemm_backward(const ExpertGemmGradProblem& problem, void* stream_handle) {
  const ExpertGemmCommon& common = problem.common;
  const ExpertGemmShape& shape = common.shape;
  const ScalarType activation = common.activation_type;
  expect_row_count_supported(shape);
  DeviceGuard guard(common.device_id);
  const cudaStream_t stream = as_stream(stream_handle);
  const BackwardPlan backward = plan_backward(problem);
  Scratch scratch(common.workspace, backward.plan.bytes(), stream);

  const ExpertSchedule schedule =
      expert_schedule_at(scratch.at(backward.schedule), shape.experts, kTrainingRowTile);
  launch_expert_schedule(common.group_end, common.group_end_is_int64, shape.rows, schedule, stream);
  const int64_t row_tiles = max_row_tiles(shape.rows, schedule);
  // Decode-sized calls: the projections and the decode GEMM over 16-row tiles (the
  // LoRA gradients keep the 128-row schedule).
  ExpertSchedule project_schedule = schedule;
  float* split_partials = nullptr;
  if (backward.decode_rows) {
    project_schedule = expert_schedule_at(scratch.at(backward.gemm_schedule), shape.experts, kDecodeRowTile);
    launch_expert_schedule(common.group_end, common.group_end_is_int64, shape.rows, project_schedule, stream);
    split_partials = static_cast<float*>(scratch.at(backward.split_partials));
  }
  const int64_t project_row_tiles = max_row_tiles(shape.rows, project_schedule);
  const RowsView grad_y_rows = make_rows_view(problem.grad_y, shape.out_features);
  const StridedView g = rank_rows_view(scratch.at(backward.grad_y_lora_b), ScalarType::Float32, shape.rank);

  if (backward.need_grad_y_lora_b) {
    RowsGemmParams project{};
    project.schedule = project_schedule;
    project.rows = grad_y_rows;
    project.depth = shape.out_features;
    project.cols = shape.rank;
    project.factor = stacked_view(common.lora_b, 2, 1);  // (expert, r, n)
    project.out = OutputView{scratch.at(backward.grad_y_lora_b), ScalarType::Float32, 0, shape.rank, 1};
    launch_lora_project(activation, project, shape.rows, project_row_tiles, split_partials, stream);
  }

  if (problem.grad_x.present()) {
    RowsGemmParams gemm{};
    gemm.schedule = schedule;
    gemm.rows = grad_y_rows;
    gemm.depth = shape.out_features;
    gemm.cols = shape.in_features;
    gemm.weight = weight_view(common);
    if (shape.rank > 0) {
      gemm.rank = shape.rank;
      gemm.lora_rows = g;
      gemm.lora_scale = common.lora_scale;
      gemm.lora_weight = stacked_view(common.lora_a, 2, 1);  // (expert, k, r)
    }
    gemm.out = matrix_output(problem.grad_x);
    // [E, N, K] contracted over N: the weight's middle dim is the depth.
    const bool b_transposed = common.layout == WeightLayout::ExpertOutIn;
    if (!backward.decode_rows && wgmma_gemm_serves(activation, b_transposed, gemm, shape.rows, shape.experts)) {
      const ExpertSchedule wide =
          expert_schedule_at(scratch.at(backward.gemm_schedule), shape.experts, kWgmmaTokens);
      launch_expert_schedule(common.group_end, common.group_end_is_int64, shape.rows, wide, stream);
      launch_wgmma_gemm(activation, b_transposed, gemm, wide, shape.rows, shape.experts, stream);
    } else if (backward.decode_rows && decode_gemm_serves(activation, b_transposed, gemm)) {
      // dY W with W read along its output features is the forward's other layout:
      // the decode GEMM for [E, depth, cols] weights serves [E, N, K], and back.
      gemm.schedule = project_schedule;
      // With LoRA, dY B (need_grad_y_lora_b) was the last launch and wrote only gemm.lora_rows.
      const ChainEntry entry = gemm.rank > 0 ? ChainEntry::WaitBeforeWrites : ChainEntry::WaitFirst;
      launch_decode_gemm(activation, b_transposed, gemm, shape.rows, project_row_tiles, split_partials, entry,
                         stream);
    } else {
      launch_dequant_gemm(activation, b_transposed, gemm, row_tiles, stream);
    }
  }

  if (problem.grad_lora_a.present()) {
    LoraGradParams grad{};
    grad.schedule = schedule;
    grad.left_strided = g;
    grad.right_rows = make_rows_view(common.x, shape.in_features);
    grad.out_rows = shape.rank;
    grad.out_cols = shape.in_features;
    grad.scale = common.lora_scale;
    grad.out = stacked_output(problem.grad_lora_a);
    launch_lora_grad(activation, true, grad, stream);
  }

  if (problem.grad_lora_b.present()) {
    StridedView xa = problem.x_lora_a.present()
                         ? rank_rows_view(problem.x_lora_a.data, problem.x_lora_a.type,
                                          problem.x_lora_a.stride[0])
                         : rank_rows_view(scratch.at(backward.x_lora_a), ScalarType::Float32, shape.rank);
    if (backward.own_x_lora_a) {
      RowsGemmParams project{};
      project.schedule = project_schedule;
      project.rows = make_rows_view(common.x, shape.in_features);
      project.depth = shape.in_features;
      project.cols = shape.rank;
      project.factor = stacked_view(common.lora_a, 1, 2);  // (expert, r, k)
      project.out = OutputView{scratch.at(backward.x_lora_a), ScalarType::Float32, 0, shape.rank, 1};
      launch_lora_project(activation, project, shape.rows, project_row_tiles, split_partials, stream);
    }
    LoraGradParams grad{};
    grad.schedule = schedule;
    grad.left_rows = grad_y_rows;
    grad.right_strided = xa;
    grad.out_rows = shape.out_features;
    grad.out_cols = shape.rank;
    grad.scale = common.lora_scale;
    grad.out = stacked_output(problem.grad_lora_b);
    launch_lora_grad(activation, false, grad, stream);
  }
}

}  // namespace moeq::cuda
