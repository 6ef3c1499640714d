// Argument checks of the expert GEMM, forward and backward.
#include "api/expert_gemm_check.hpp"

#include "api/matrix_check.hpp"
#include "api/qtensor_check.hpp"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace moeq {
namespace {

struct Named {
  const DLTensor* tensor;
  const char* name;
};

// A tensor read or written through arbitrary non-negative strides.
StridedTensor strided_view(const DLTensor& tensor, const std::string& name) {
  const std::vector<int64_t> strides = strides_of(tensor);
  StridedTensor view;
  view.data = data_pointer(tensor, name);
  view.type = float_type(tensor, name);
  for (int32_t i = 0; i < tensor.ndim && i < 3; ++i) {
    if (strides[i] < 0)
      fail_argument(name, "expected non-negative strides, got " + std::to_string(strides[i]) +
                              " in dim " + std::to_string(i));
    view.stride[i] = strides[i];
  }
  return view;
}

// An output written through arbitrary strides must give every element memory of
// its own, or the threads writing two of them would race. Sufficient and cheap:
// with the dims of size > 1 sorted by stride, each stride passes the reach of the
// smaller ones.
void expect_no_self_overlap(const DLTensor& tensor, const std::string& name) {
  const std::vector<int64_t> strides = strides_of(tensor);
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size)
  for (int32_t i = 0; i < tensor.ndim; ++i) {
    if (tensor.shape[i] == 0) return;
    if (tensor.shape[i] > 1) dims.emplace_back(strides[i], tensor.shape[i]);
  }
  std::sort(dims.begin(), dims.end());
  int64_t reach = 0;
  for (const auto& [stride, size] : dims) {
    if (stride <= reach) {
      std::string text;
      for (int64_t s : strides) text += (text.empty() ? "" : ", ") + std::to_string(s);
      fail_argument(name, "expected strides that give every element memory of its own, got (" +
                              text + ") for shape " + shape_string(tensor));
    }
    reach += (size - 1) * stride;
  }
}

void expect_float32_or(ScalarType actual, ScalarType activation, const std::string& name) {
  if (actual != ScalarType::Float32 && actual != activation)
    fail_argument(name, std::string("expected dtype float32 or ") + scalar_type_name(activation) +
                            " (the activations' dtype), got " + scalar_type_name(actual));
}

// Weight, group_end and LoRA: everything forward and backward share. `x_like` is
// the tensor whose rows define M and the activation dtype.
ExpertGemmCommon check_common(const moeq_qtensor* weight, int32_t layout,
                              const DLTensor* group_end_arg, const DLTensor* lora_a_arg,
                              const DLTensor* lora_b_arg, float lora_scale, int64_t rows,
                              int64_t in_features_from_x, ScalarType activation, Device device,
                              void* workspace, size_t workspace_bytes) {
  ExpertGemmCommon common;
  common.device_id = device.id;
  common.activation_type = activation;
  Device weight_device;
  common.weight = check_qtensor(weight, "weight", &weight_device, &device, "the activations");
  if (weight->ndim != 3)
    fail_argument("weight", "expected 3 dims [E, N, K] or [E, K, N], got ndim " +
                                std::to_string(weight->ndim));
  if (layout == MOEQ_LAYOUT_EXPERT_OUT_IN) common.layout = WeightLayout::ExpertOutIn;
  else if (layout == MOEQ_LAYOUT_EXPERT_IN_OUT) common.layout = WeightLayout::ExpertInOut;
  else
    fail_argument("weight_layout", "expected MOEQ_LAYOUT_EXPERT_OUT_IN (0) or "
                                   "MOEQ_LAYOUT_EXPERT_IN_OUT (1), got " + std::to_string(layout));
  const bool out_in = common.layout == WeightLayout::ExpertOutIn;
  ExpertGemmShape& shape = common.shape;
  shape.experts = weight->shape[0];
  shape.out_features = out_in ? weight->shape[1] : weight->shape[2];
  shape.in_features = out_in ? weight->shape[2] : weight->shape[1];
  shape.rows = rows;
  if (shape.experts < 1) fail_argument("weight", "expected at least one expert, got E = 0");
  if (in_features_from_x >= 0 && in_features_from_x != shape.in_features)
    fail_argument("x", "expected " + std::to_string(shape.in_features) +
                           " columns (K of weight), got " + std::to_string(in_features_from_x));
  const int64_t last_dim = weight->shape[2];
  if (last_dim % common.weight.blocksize != 0)
    fail_argument("weight", std::string("the last dim (") + (out_in ? "K" : "N") + " = " +
                                std::to_string(last_dim) + ") must be a multiple of blocksize " +
                                std::to_string(common.weight.blocksize) +
                                " so that quantization blocks never straddle rows");

  const DLTensor& group_end = require_tensor(group_end_arg, "group_end");
  expect_device(group_end, device, "group_end");
  expect_shape(group_end, {shape.experts}, "group_end", "[E]");
  expect_contiguous(group_end, "group_end");
  const DLDataType gtype = group_end.dtype;
  if (gtype.code != kDLInt || (gtype.bits != 32 && gtype.bits != 64) || gtype.lanes != 1)
    fail_argument("group_end", "expected dtype int32 or int64, got " + dtype_name(gtype));
  common.group_end_is_int64 = gtype.bits == 64;
  common.group_end = data_pointer(group_end, "group_end");
  if (device.kind == DeviceKind::Cpu) {
    // On the CPU the routing is host memory and can be checked; the GPU kernels
    // clamp instead, so a bad group_end never writes out of bounds there.
    int64_t previous = 0;
    for (int64_t e = 0; e < shape.experts; ++e) {
      const int64_t end = common.group_end_is_int64
                              ? static_cast<const int64_t*>(common.group_end)[e]
                              : static_cast<const int32_t*>(common.group_end)[e];
      if (end < previous)
        fail_argument("group_end", "expected non-decreasing row ends, got " +
                                       std::to_string(end) + " after " + std::to_string(previous) +
                                       " at expert " + std::to_string(e));
      if (end > rows)
        fail_argument("group_end", "expected row ends <= M = " + std::to_string(rows) + ", got " +
                                       std::to_string(end) + " at expert " + std::to_string(e));
      previous = end;
    }
  }

  if ((lora_a_arg == nullptr) != (lora_b_arg == nullptr))
    fail_argument(lora_a_arg ? "lora_b" : "lora_a",
                  "expected lora_a and lora_b both given or both NULL");
  if (lora_a_arg != nullptr) {
    const DLTensor& lora_a = require_tensor(lora_a_arg, "lora_a");
    const DLTensor& lora_b = require_tensor(lora_b_arg, "lora_b");
    expect_device(lora_a, device, "lora_a");
    expect_device(lora_b, device, "lora_b");
    expect_ndim(lora_a, 3, "lora_a", "[E, r, K]");
    shape.rank = lora_a.shape[1];
    if (shape.rank < 1) fail_argument("lora_a", "expected rank r >= 1, got " + shape_string(lora_a));
    expect_shape(lora_a, {shape.experts, shape.rank, shape.in_features}, "lora_a", "[E, r, K]");
    expect_shape(lora_b, {shape.experts, shape.out_features, shape.rank}, "lora_b", "[E, N, r]");
    common.lora_a = strided_view(lora_a, "lora_a");
    common.lora_b = strided_view(lora_b, "lora_b");
    expect_float32_or(common.lora_a.type, activation, "lora_a");
    expect_float32_or(common.lora_b.type, activation, "lora_b");
    if (!(lora_scale == lora_scale)) fail_argument("lora_scale", "expected a number, got NaN");
    common.lora_scale = lora_scale;
  }
  common.workspace = workspace;
  common.workspace_bytes = workspace_bytes;
  return common;
}

void expect_outputs_apart(const std::vector<Named>& outputs, const std::vector<Named>& inputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].tensor == nullptr) continue;
    for (const Named& input : inputs)
      if (input.tensor != nullptr)
        expect_no_overlap(*outputs[i].tensor, outputs[i].name, *input.tensor, input.name);
    for (size_t j = 0; j < i; ++j)
      if (outputs[j].tensor != nullptr)
        expect_no_overlap(*outputs[i].tensor, outputs[i].name, *outputs[j].tensor, outputs[j].name);
  }
}

std::vector<Named> weight_buffers(const moeq_qtensor& weight) {
  std::vector<Named> buffers = {{&weight.packed, "weight.packed"}, {&weight.absmax, "weight.absmax"}};
  if (weight.nested) {
    buffers.push_back({&weight.nested_absmax, "weight.nested_absmax"});
    buffers.push_back({&weight.nested_code, "weight.nested_code"});
    buffers.push_back({&weight.nested_offset, "weight.nested_offset"});
  }
  return buffers;
}

}  // namespace

ExpertGemmProblem check_expert_gemm(const moeq_expert_gemm_args* args, Device* device) {
  if (args == nullptr) fail_argument("args", "expected moeq_expert_gemm_args, got NULL");
  expect_struct_size(args->struct_size, sizeof(moeq_expert_gemm_args), "args");
  const DLTensor& x = require_tensor(args->x, "x");
  expect_ndim(x, 2, "x", "[M, K]");
  *device = device_of(x, "x");
  ExpertGemmProblem problem;
  problem.common = check_common(args->weight, args->weight_layout, args->group_end, args->lora_a,
                                args->lora_b, args->lora_scale, x.shape[0], x.shape[1],
                                float_type(x, "x"), *device, args->workspace,
                                args->workspace_bytes);
  ExpertGemmCommon& common = problem.common;
  common.x = row_major_matrix(x, "x");
  const ExpertGemmShape& shape = common.shape;

  const DLTensor& y = require_tensor(args->y, "y");
  expect_device(y, *device, "y");
  expect_shape(y, {shape.rows, shape.out_features}, "y", "[M, N]");
  problem.y = row_major_matrix(y, "y");
  expect_type(problem.y.type, common.activation_type, "y", "the dtype of x");
  if (args->x_lora_a != nullptr) {
    if (shape.rank == 0) fail_argument("x_lora_a", "given, but there is no LoRA (lora_a is NULL)");
    const DLTensor& saved = require_tensor(args->x_lora_a, "x_lora_a");
    expect_device(saved, *device, "x_lora_a");
    expect_shape(saved, {shape.rows, shape.rank}, "x_lora_a", "[M, r]");
    problem.x_lora_a = row_major_matrix(saved, "x_lora_a");
    expect_float32_or(problem.x_lora_a.type, common.activation_type, "x_lora_a");
  }
  std::vector<Named> inputs = {{args->x, "x"}, {args->group_end, "group_end"},
                               {args->lora_a, "lora_a"}, {args->lora_b, "lora_b"}};
  for (const Named& buffer : weight_buffers(*args->weight)) inputs.push_back(buffer);
  expect_outputs_apart({{args->y, "y"}, {args->x_lora_a, "x_lora_a"}}, inputs);
  return problem;
}

ExpertGemmGradProblem check_expert_gemm_grad(const moeq_expert_gemm_grad_args* args,
                                             Device* device) {
  if (args == nullptr) fail_argument("args", "expected moeq_expert_gemm_grad_args, got NULL");
  expect_struct_size(args->struct_size, sizeof(moeq_expert_gemm_grad_args), "args");
  const DLTensor& grad_y = require_tensor(args->grad_y, "grad_y");
  expect_ndim(grad_y, 2, "grad_y", "[M, N]");
  *device = device_of(grad_y, "grad_y");
  const ScalarType activation = float_type(grad_y, "grad_y");
  int64_t x_columns = -1;
  if (args->x != nullptr) {
    const DLTensor& x = require_tensor(args->x, "x");
    expect_device(x, *device, "x");
    expect_ndim(x, 2, "x", "[M, K]");
    if (x.shape[0] != grad_y.shape[0])
      fail_argument("x", "expected " + std::to_string(grad_y.shape[0]) +
                             " rows like grad_y, got " + shape_string(x));
    expect_type(float_type(x, "x"), activation, "x", "the dtype of grad_y");
    x_columns = x.shape[1];
  }
  ExpertGemmGradProblem problem;
  problem.common = check_common(args->weight, args->weight_layout, args->group_end, args->lora_a,
                                args->lora_b, args->lora_scale, grad_y.shape[0], x_columns,
                                activation, *device, args->workspace, args->workspace_bytes);
  ExpertGemmCommon& common = problem.common;
  const ExpertGemmShape& shape = common.shape;
  if (args->x != nullptr) common.x = row_major_matrix(*args->x, "x");
  expect_shape(grad_y, {shape.rows, shape.out_features}, "grad_y", "[M, N]");
  problem.grad_y = row_major_matrix(grad_y, "grad_y");

  if (args->x_lora_a != nullptr) {
    if (shape.rank == 0) fail_argument("x_lora_a", "given, but there is no LoRA (lora_a is NULL)");
    const DLTensor& saved = require_tensor(args->x_lora_a, "x_lora_a");
    expect_device(saved, *device, "x_lora_a");
    expect_shape(saved, {shape.rows, shape.rank}, "x_lora_a", "[M, r]");
    problem.x_lora_a = row_major_matrix(saved, "x_lora_a");
    expect_float32_or(problem.x_lora_a.type, activation, "x_lora_a");
  }
  if (args->grad_x == nullptr && args->grad_lora_a == nullptr && args->grad_lora_b == nullptr)
    fail_argument("grad_x", "expected at least one of grad_x, grad_lora_a, grad_lora_b");
  if (args->grad_x != nullptr) {
    const DLTensor& grad_x = require_tensor(args->grad_x, "grad_x");
    expect_device(grad_x, *device, "grad_x");
    expect_shape(grad_x, {shape.rows, shape.in_features}, "grad_x", "[M, K]");
    problem.grad_x = row_major_matrix(grad_x, "grad_x");
    expect_type(problem.grad_x.type, activation, "grad_x", "the dtype of grad_y");
  }
  if ((args->grad_lora_a != nullptr || args->grad_lora_b != nullptr) && shape.rank == 0)
    fail_argument(args->grad_lora_a ? "grad_lora_a" : "grad_lora_b",
                  "a LoRA gradient was asked for, but lora_a and lora_b are NULL");
  if (args->grad_lora_a != nullptr) {
    if (args->x == nullptr) fail_argument("x", "expected x: grad_lora_a needs it, got NULL");
    const DLTensor& grad_a = require_tensor(args->grad_lora_a, "grad_lora_a");
    expect_device(grad_a, *device, "grad_lora_a");
    expect_shape(grad_a, {shape.experts, shape.rank, shape.in_features}, "grad_lora_a", "[E, r, K]");
    problem.grad_lora_a = strided_view(grad_a, "grad_lora_a");
    expect_no_self_overlap(grad_a, "grad_lora_a");
    expect_type(problem.grad_lora_a.type, common.lora_a.type, "grad_lora_a", "the dtype of lora_a");
  }
  if (args->grad_lora_b != nullptr) {
    if (args->x == nullptr && args->x_lora_a == nullptr)
      fail_argument("x", "expected x or x_lora_a: grad_lora_b needs one of them, got neither");
    const DLTensor& grad_b = require_tensor(args->grad_lora_b, "grad_lora_b");
    expect_device(grad_b, *device, "grad_lora_b");
    expect_shape(grad_b, {shape.experts, shape.out_features, shape.rank}, "grad_lora_b", "[E, N, r]");
    problem.grad_lora_b = strided_view(grad_b, "grad_lora_b");
    expect_no_self_overlap(grad_b, "grad_lora_b");
    expect_type(problem.grad_lora_b.type, common.lora_b.type, "grad_lora_b", "the dtype of lora_b");
  }
  std::vector<Named> inputs = {{args->x, "x"}, {args->grad_y, "grad_y"},
                               {args->group_end, "group_end"}, {args->lora_a, "lora_a"},
                               {args->lora_b, "lora_b"}, {args->x_lora_a, "x_lora_a"}};
  for (const Named& buffer : weight_buffers(*args->weight)) inputs.push_back(buffer);
  expect_outputs_apart({{args->grad_x, "grad_x"}, {args->grad_lora_a, "grad_lora_a"},
                        {args->grad_lora_b, "grad_lora_b"}},
                       inputs);
  return problem;
}

}  // namespace moeq
