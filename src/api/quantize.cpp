// C entry points moeq_quantized_layout and moeq_quantize: argument checks, then
// the CPU backend or the CUDA kernels.
#include "api/device_dispatch.hpp"
#include "api/qtensor_check.hpp"
#include "core/backend.hpp"

namespace moeq {
namespace {

Format check_config(const moeq_quant_config* config, int64_t* blocksize, bool* nested) {
  if (config == nullptr) fail_argument("config", "expected a moeq_quant_config, got NULL");
  expect_struct_size(config->struct_size, sizeof(moeq_quant_config), "config");
  const Format format = check_format(config->format, "config.format");
  check_blocksize(config->blocksize, "config.blocksize");
  if (config->nested != 0 && config->nested != 1)
    fail_argument("config.nested", "expected 0 or 1, got " + std::to_string(config->nested));
  *blocksize = config->blocksize;
  *nested = config->nested == 1;
  return format;
}

void quantize(const DLTensor* input_arg, const moeq_quant_config* config, moeq_qtensor* out,
              void* workspace, size_t workspace_bytes, void* stream) {
  const DLTensor& input = require_tensor(input_arg, "input");
  int64_t blocksize = 0;
  bool nested = false;
  const Format format = check_config(config, &blocksize, &nested);
  const ScalarType input_type = float_type(input, "input");
  if (input.ndim > MOEQ_MAX_DIMS)
    fail_argument("input", "expected at most " + std::to_string(MOEQ_MAX_DIMS) + " dims, got " +
                               std::to_string(input.ndim));
  expect_contiguous(input, "input");
  const Device device = device_of(input, "input");
  if (out == nullptr) fail_argument("out", "expected a moeq_qtensor to fill, got NULL");
  expect_struct_size(out->struct_size, sizeof(moeq_qtensor), "out");

  // Describe the result first so the buffers are checked against it.
  moeq_qtensor described = *out;
  described.format = static_cast<int32_t>(format);
  described.blocksize = static_cast<int32_t>(blocksize);
  described.nested = nested ? 1 : 0;
  described.ndim = input.ndim;
  for (int32_t i = 0; i < MOEQ_MAX_DIMS; ++i) described.shape[i] = i < input.ndim ? input.shape[i] : 0;
  described.dtype = input.dtype;
  Device buffers_device;
  QuantizeProblem problem;
  problem.out = check_qtensor(&described, "out", &buffers_device, &device, "input");
  const DLTensor* outputs[] = {&out->packed, &out->absmax, &out->nested_absmax, &out->nested_code,
                               &out->nested_offset};
  const char* output_names[] = {"out.packed", "out.absmax", "out.nested_absmax",
                                "out.nested_code", "out.nested_offset"};
  for (int i = 0; i < (nested ? 5 : 2); ++i) {
    expect_no_overlap(*outputs[i], output_names[i], input, "input");
    for (int j = 0; j < i; ++j) expect_no_overlap(*outputs[i], output_names[i], *outputs[j], output_names[j]);
  }
  problem.input = data_pointer(input, "input");
  problem.input_type = input_type;
  problem.device_id = device.id;
  problem.workspace = workspace;
  problem.workspace_bytes = workspace_bytes;
  if (device.kind == DeviceKind::Cpu) {
    cpu::quantize(problem);
  } else {
    require_cuda_device(device, "input");
    const size_t needed = cuda::quantize_workspace_bytes(problem.out);
    if (workspace != nullptr && workspace_bytes < needed)
      fail(MOEQ_ERR_WORKSPACE_TOO_SMALL, "workspace_bytes: expected at least " +
                                             std::to_string(needed) + ", got " +
                                             std::to_string(workspace_bytes));
    cuda::quantize(problem, stream);
  }
  // Only after the buffers were written does the descriptor change.
  out->format = described.format;
  out->blocksize = described.blocksize;
  out->nested = described.nested;
  out->ndim = described.ndim;
  for (int32_t i = 0; i < MOEQ_MAX_DIMS; ++i) out->shape[i] = described.shape[i];
  out->dtype = described.dtype;
}

}  // namespace
}  // namespace moeq

extern "C" {

MOEQ_API moeq_status moeq_quantized_layout(const moeq_quant_config* config, int32_t ndim,
                                           const int64_t* shape, moeq_quant_layout* out) {
  return moeq::api_guard([&] {
    int64_t blocksize = 0;
    bool nested = false;
    const moeq::Format format = moeq::check_config(config, &blocksize, &nested);
    if (ndim < 0 || ndim > MOEQ_MAX_DIMS)
      moeq::fail_argument("ndim", "expected 0.." + std::to_string(MOEQ_MAX_DIMS) + ", got " +
                                      std::to_string(ndim));
    if (ndim > 0 && shape == nullptr) moeq::fail_argument("shape", "expected sizes, got NULL");
    if (out == nullptr) moeq::fail_argument("out", "expected a moeq_quant_layout to fill, got NULL");
    moeq::expect_struct_size(out->struct_size, sizeof(moeq_quant_layout), "out");
    const int64_t numel = moeq::element_count(ndim, shape, "shape");
    *out = moeq::quant_layout(format, blocksize, nested, numel);
  });
}

MOEQ_API moeq_status moeq_quantize(const DLTensor* input, const moeq_quant_config* config,
                                   moeq_qtensor* out, void* workspace, size_t workspace_bytes,
                                   void* stream) {
  return moeq::api_guard(
      [&] { moeq::quantize(input, config, out, workspace, workspace_bytes, stream); });
}

}  // extern "C"
