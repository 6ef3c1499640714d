// Bad input: every call returns a clear status and a message naming the argument,
// and nothing is written.
#include "support/expect_error.hpp"
#include "support/host_tensor.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

using namespace moeq_test;

namespace {

// The status must be `expected` and moeq_last_error() must start with "argument:".
void expect_rejected(moeq_status status, moeq_status expected, const std::string& argument) {
  expect_error(status, expected, argument + ":");
}

// A valid quantize call whose pieces the cases below break one at a time.
struct QuantizeCall {
  QuantizeCall(bool nested = false)
      : input(float32_type(), {4, 64}), q(MOEQ_FORMAT_NF4, 64, nested, {4, 64}, float32_type()) {
    std::mt19937_64 rng(1);
    input.fill_normal(rng);
    config = q.config();
  }
  moeq_status run() { return moeq_quantize(input.dl(), &config, q.q(), nullptr, 0, nullptr); }
  HostTensor input;
  HostQTensor q;
  moeq_quant_config config{};
};

// A valid expert GEMM call (2 experts, N 32, K 64, 5 rows, rank 4).
struct GemmCall {
  GemmCall()
      : weight_input(float32_type(), {2, 32, 64}),
        weight(MOEQ_FORMAT_NF4, 32, false, {2, 32, 64}, float32_type()),
        x(bfloat16_type(), {5, 64}),
        group_end(int64_type(), {2}),
        lora_a(float32_type(), {2, 4, 64}),
        lora_b(float32_type(), {2, 32, 4}),
        y(bfloat16_type(), {5, 32}),
        grad_y(bfloat16_type(), {5, 32}),
        grad_x(bfloat16_type(), {5, 64}),
        grad_a(float32_type(), {2, 4, 64}) {
    std::mt19937_64 rng(2);
    weight_input.fill_normal(rng);
    quantize_into(weight_input, weight);
    x.fill_normal(rng);
    grad_y.fill_normal(rng);
    lora_a.fill_normal(rng);
    lora_b.fill_normal(rng);
    group_end.set_flat(0, 2);
    group_end.set_flat(1, 5);
    args.struct_size = sizeof(args);
    args.x = x.dl();
    args.weight = weight.q();
    args.weight_layout = MOEQ_LAYOUT_EXPERT_OUT_IN;
    args.group_end = group_end.dl();
    args.lora_a = lora_a.dl();
    args.lora_b = lora_b.dl();
    args.lora_scale = 2.0f;
    args.y = y.dl();
    grad.struct_size = sizeof(grad);
    grad.x = x.dl();
    grad.weight = weight.q();
    grad.group_end = group_end.dl();
    grad.lora_a = lora_a.dl();
    grad.lora_b = lora_b.dl();
    grad.lora_scale = 2.0f;
    grad.grad_y = grad_y.dl();
    grad.grad_x = grad_x.dl();
  }
  moeq_status forward() { return moeq_expert_gemm_lora(&args, nullptr); }
  moeq_status backward() { return moeq_expert_gemm_lora_backward(&grad, nullptr); }
  HostTensor weight_input;
  HostQTensor weight;
  HostTensor x, group_end, lora_a, lora_b, y, grad_y, grad_x, grad_a;
  moeq_expert_gemm_args args{};
  moeq_expert_gemm_grad_args grad{};
};

}  // namespace

TEST_CASE("quantize rejects NULL arguments") {
  QuantizeCall call;
  expect_rejected(moeq_quantize(nullptr, &call.config, call.q.q(), nullptr, 0, nullptr), MOEQ_ERR_INVALID_ARGUMENT, "input");
  expect_rejected(moeq_quantize(call.input.dl(), nullptr, call.q.q(), nullptr, 0, nullptr), MOEQ_ERR_INVALID_ARGUMENT, "config");
  expect_rejected(moeq_quantize(call.input.dl(), &call.config, nullptr, nullptr, 0, nullptr), MOEQ_ERR_INVALID_ARGUMENT, "out");
}

TEST_CASE("quantize rejects struct_size smaller than the struct") {
  QuantizeCall call;
  call.config.struct_size = 4;
  expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "config.struct_size");
  QuantizeCall call2;
  call2.q.q()->struct_size = 8;
  expect_rejected(call2.run(), MOEQ_ERR_INVALID_ARGUMENT, "out.struct_size");
}

TEST_CASE("quantize rejects unknown formats and bad blocksizes") {
  for (int32_t format : {0, 3, -1}) {
    QuantizeCall call;
    call.config.format = format;
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "config.format");
  }
  for (int32_t blocksize : {48, 16, 8192, 0, -64}) {
    QuantizeCall call;
    call.config.blocksize = blocksize;
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "config.blocksize");
  }
  QuantizeCall call;
  call.config.nested = 2;
  expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "config.nested");
}

TEST_CASE("quantize rejects inputs of the wrong dtype, layout, device or shape") {
  {
    QuantizeCall call;
    call.input.dl()->dtype = int32_type();
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "input");
  }
  {
    QuantizeCall call;
    int64_t strides[2] = {1, 4};
    call.input.dl()->strides = strides;
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "input");
  }
  {
    QuantizeCall call;
    call.input.dl()->device = {kDLOpenCL, 0};
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "input");
  }
  {
    QuantizeCall call;
    call.input.dl()->shape = nullptr;
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "input");
  }
  {
    QuantizeCall call;
    int64_t negative[2] = {-4, 64};
    call.input.dl()->shape = negative;
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "input");
  }
  {
    QuantizeCall call;
    int64_t nine[9] = {1, 1, 1, 1, 4, 1, 1, 1, 64};
    call.input.dl()->ndim = 9;
    call.input.dl()->shape = nine;
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "input");
  }
}

TEST_CASE("quantize rejects output buffers of the wrong size, dtype, device or place, writing nothing") {
  {
    QuantizeCall call;
    int64_t wrong = 100;
    call.q.q()->packed.shape = &wrong;
    const std::vector<uint8_t> before = call.q.packed.bytes();
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "out.packed");
    CHECK(call.q.packed.bytes() == before);
  }
  {
    QuantizeCall call;
    call.q.q()->absmax.dtype = uint8_type();
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "out.absmax");
  }
  {
    QuantizeCall call(true);
    call.q.q()->nested_code.data = nullptr;
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "out.nested_code");
  }
  {
    QuantizeCall call(true);
    call.q.q()->nested_offset.dtype = float16_type();
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "out.nested_offset");
  }
  {
    QuantizeCall call;
    call.q.q()->packed.device = {kDLCUDA, 0};
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "out.packed");
  }
  {
    QuantizeCall call;
    call.q.q()->packed.data = call.input.data();  // output aliasing the input
    const std::vector<uint8_t> before = call.input.bytes();
    expect_rejected(call.run(), MOEQ_ERR_INVALID_ARGUMENT, "out.packed");
    CHECK(call.input.bytes() == before);
  }
}

TEST_CASE("quantized_layout rejects bad ndim and sizes that overflow") {
  moeq_quant_config config{sizeof(moeq_quant_config), MOEQ_FORMAT_NF4, 64, 0};
  moeq_quant_layout layout{};
  layout.struct_size = sizeof(layout);
  const int64_t huge[3] = {int64_t{1} << 30, int64_t{1} << 30, int64_t{1} << 30};
  expect_rejected(moeq_quantized_layout(&config, 3, huge, &layout), MOEQ_ERR_INVALID_ARGUMENT, "shape");
  expect_rejected(moeq_quantized_layout(&config, -1, huge, &layout), MOEQ_ERR_INVALID_ARGUMENT, "ndim");
  expect_rejected(moeq_quantized_layout(&config, 2, nullptr, &layout), MOEQ_ERR_INVALID_ARGUMENT, "shape");
  layout.struct_size = 3;
  expect_rejected(moeq_quantized_layout(&config, 3, huge, &layout), MOEQ_ERR_INVALID_ARGUMENT, "out.struct_size");
}

TEST_CASE("dequantize rejects bad qtensors and outputs") {
  QuantizeCall call;
  REQUIRE(call.run() == MOEQ_OK);
  HostTensor out(float32_type(), {4, 64});
  expect_rejected(moeq_dequantize(nullptr, out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "q");
  expect_rejected(moeq_dequantize(call.q.q(), nullptr, nullptr), MOEQ_ERR_INVALID_ARGUMENT, "out");
  HostTensor wrong_shape(float32_type(), {64, 4});
  expect_rejected(moeq_dequantize(call.q.q(), wrong_shape.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "out");
  HostTensor wrong_dtype(int32_type(), {4, 64});
  expect_rejected(moeq_dequantize(call.q.q(), wrong_dtype.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "out");
  moeq_qtensor broken = *call.q.q();
  broken.blocksize = 100;
  expect_rejected(moeq_dequantize(&broken, out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "q.blocksize");
  broken = *call.q.q();
  broken.format = 9;
  expect_rejected(moeq_dequantize(&broken, out.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "q.format");
  broken = *call.q.q();
  broken.shape[1] = 65;  // packed no longer matches the logical shape
  HostTensor bigger(float32_type(), {4, 65});
  expect_rejected(moeq_dequantize(&broken, bigger.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "q.packed");
  HostTensor aliasing(float32_type(), {4, 64});
  aliasing.dl()->data = call.q.packed.data();
  expect_rejected(moeq_dequantize(call.q.q(), aliasing.dl(), nullptr), MOEQ_ERR_INVALID_ARGUMENT, "out");
}

TEST_CASE("expert GEMM rejects NULL and undersized argument structs") {
  expect_rejected(moeq_expert_gemm_lora(nullptr, nullptr), MOEQ_ERR_INVALID_ARGUMENT, "args");
  GemmCall call;
  call.args.struct_size = 16;
  expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "args.struct_size");
  GemmCall call2;
  call2.args.x = nullptr;
  expect_rejected(call2.forward(), MOEQ_ERR_INVALID_ARGUMENT, "x");
  GemmCall call3;
  call3.args.weight = nullptr;
  expect_rejected(call3.forward(), MOEQ_ERR_INVALID_ARGUMENT, "weight");
}

TEST_CASE("expert GEMM rejects shapes that do not fit together") {
  {
    GemmCall call;
    HostTensor x3(bfloat16_type(), {5, 64, 1});
    call.args.x = x3.dl();
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "x");
  }
  {
    GemmCall call;
    HostTensor x_wide(bfloat16_type(), {5, 96});
    call.args.x = x_wide.dl();
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "x");
  }
  {
    GemmCall call;
    call.weight.q()->ndim = 2;
    call.weight.q()->shape[0] = 64;
    call.weight.q()->shape[1] = 64;
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "weight");
  }
  {
    GemmCall call;
    call.args.weight_layout = 7;
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "weight_layout");
  }
  {
    GemmCall call;
    HostTensor y_wrong(bfloat16_type(), {5, 31});
    call.args.y = y_wrong.dl();
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "y");
  }
  {
    GemmCall call;
    HostTensor lora_b_wrong(float32_type(), {2, 32, 5});
    call.args.lora_b = lora_b_wrong.dl();
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "lora_b");
  }
}

TEST_CASE("expert GEMM rejects a weight whose rows straddle quantization blocks") {
  HostTensor input(float32_type(), {2, 32, 48});
  std::mt19937_64 rng(3);
  input.fill_normal(rng);
  HostQTensor weight(MOEQ_FORMAT_NF4, 32, false, {2, 32, 48}, float32_type());
  quantize_into(input, weight);
  GemmCall call;
  HostTensor x(bfloat16_type(), {5, 48});
  call.args.x = x.dl();
  call.args.weight = weight.q();
  call.args.lora_a = nullptr;
  call.args.lora_b = nullptr;
  expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "weight");
  CHECK(std::string(moeq_last_error()).find("multiple of blocksize") != std::string::npos);
}

TEST_CASE("expert GEMM rejects bad routing") {
  {
    GemmCall call;
    call.group_end.set_flat(0, 4);
    call.group_end.set_flat(1, 3);
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "group_end");
  }
  {
    GemmCall call;
    call.group_end.set_flat(1, 6);
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "group_end");
  }
  {
    GemmCall call;
    call.group_end.dl()->dtype = float32_type();
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "group_end");
  }
  {
    GemmCall call;
    HostTensor three(int64_type(), {3});
    call.args.group_end = three.dl();
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "group_end");
  }
}

TEST_CASE("expert GEMM rejects inconsistent LoRA arguments") {
  {
    GemmCall call;
    call.args.lora_b = nullptr;
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "lora_b");
  }
  {
    GemmCall call;
    HostTensor half_a(float16_type(), {2, 4, 64});
    call.args.lora_a = half_a.dl();  // neither float32 nor the activations' bfloat16
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "lora_a");
  }
  {
    GemmCall call;
    call.args.lora_scale = std::numeric_limits<float>::quiet_NaN();
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "lora_scale");
  }
  {
    GemmCall call;
    HostTensor saved(float32_type(), {5, 4});
    call.args.lora_a = nullptr;
    call.args.lora_b = nullptr;
    call.args.x_lora_a = saved.dl();
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "x_lora_a");
  }
}

TEST_CASE("expert GEMM rejects outputs of the wrong dtype, device, or aliasing inputs") {
  {
    GemmCall call;
    HostTensor y_f32(float32_type(), {5, 32});
    call.args.y = y_f32.dl();
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "y");
  }
  {
    GemmCall call;
    HostTensor y_alias(bfloat16_type(), {5, 32});
    y_alias.dl()->data = call.x.data();
    call.args.y = y_alias.dl();
    const std::vector<uint8_t> before = call.x.bytes();
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "y");
    CHECK(call.x.bytes() == before);
  }
  {
    GemmCall call;
    call.y.dl()->device = {kDLCUDA, 0};
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "y");
  }
  {
    GemmCall call;
    call.lora_a.dl()->device = {kDLCUDA, 0};
    expect_rejected(call.forward(), MOEQ_ERR_INVALID_ARGUMENT, "lora_a");
  }
}

TEST_CASE("expert GEMM backward rejects missing inputs and outputs") {
  {
    GemmCall call;
    call.grad.grad_x = nullptr;
    expect_rejected(call.backward(), MOEQ_ERR_INVALID_ARGUMENT, "grad_x");
  }
  {
    GemmCall call;
    call.grad.grad_lora_a = call.grad_a.dl();
    call.grad.x = nullptr;
    expect_rejected(call.backward(), MOEQ_ERR_INVALID_ARGUMENT, "x");
  }
  {
    GemmCall call;
    call.grad.grad_lora_a = call.grad_a.dl();
    call.grad.lora_a = nullptr;
    call.grad.lora_b = nullptr;
    expect_rejected(call.backward(), MOEQ_ERR_INVALID_ARGUMENT, "grad_lora_a");
  }
  {
    GemmCall call;
    HostTensor grad_y_wrong(bfloat16_type(), {5, 33});
    call.grad.grad_y = grad_y_wrong.dl();
    expect_rejected(call.backward(), MOEQ_ERR_INVALID_ARGUMENT, "grad_y");
  }
  {
    GemmCall call;
    call.grad.grad_x = call.grad_y.dl();  // shape [5, 32] is not [M, K]
    expect_rejected(call.backward(), MOEQ_ERR_INVALID_ARGUMENT, "grad_x");
  }
}

TEST_CASE("workspace queries and library tensors reject bad arguments") {
  GemmCall call;
  expect_rejected(moeq_expert_gemm_workspace_size(&call.args, nullptr), MOEQ_ERR_INVALID_ARGUMENT, "bytes");
  size_t bytes = 99;
  REQUIRE(moeq_expert_gemm_workspace_size(&call.args, &bytes) == MOEQ_OK);
  CHECK(bytes == 0);  // the CPU path needs no workspace
  const int64_t shape[2] = {3, 4};
  expect_rejected(moeq_tensor_empty(2, shape, float32_type(), {kDLCPU, 0}, nullptr), MOEQ_ERR_INVALID_ARGUMENT, "out");
  DLManagedTensorVersioned* tensor = nullptr;
  expect_rejected(moeq_tensor_empty(2, shape, DLDataType{kDLFloat, 0, 1}, {kDLCPU, 0}, &tensor), MOEQ_ERR_INVALID_ARGUMENT, "dtype");
  CHECK(tensor == nullptr);
  expect_rejected(moeq_tensor_empty(2, shape, float32_type(), {kDLVulkan, 0}, &tensor), MOEQ_ERR_INVALID_ARGUMENT, "device");
  moeq_tensor_free(nullptr);  // NULL-safe
}

TEST_CASE("CUDA tensors without a GPU give MOEQ_ERR_NO_DEVICE or MOEQ_ERR_UNSUPPORTED, not a crash") {
  if (moeq_cuda_available()) {
    MESSAGE("skipped: a GPU is present");
    return;
  }
  const int64_t shape[1] = {16};
  DLManagedTensorVersioned* tensor = nullptr;
  const moeq_status status = moeq_tensor_empty(1, shape, float32_type(), {kDLCUDA, 0}, &tensor);
  CHECK((status == MOEQ_ERR_NO_DEVICE || status == MOEQ_ERR_UNSUPPORTED));
  CHECK(tensor == nullptr);
  QuantizeCall call;
  call.input.dl()->device = {kDLCUDA, 0};
  call.q.q()->packed.device = {kDLCUDA, 0};
  call.q.q()->absmax.device = {kDLCUDA, 0};
  const moeq_status quantize_status = call.run();
  CHECK((quantize_status == MOEQ_ERR_NO_DEVICE || quantize_status == MOEQ_ERR_UNSUPPORTED));
  CHECK(std::string(moeq_last_error()).rfind("input: a CUDA tensor", 0) == 0);
}

TEST_CASE("library tensors are DLPack 1.x managed tensors freed by their deleter") {
  const int64_t shape[3] = {2, 3, 5};
  DLManagedTensorVersioned* tensor = nullptr;
  REQUIRE(moeq_tensor_empty(3, shape, bfloat16_type(), {kDLCPU, 0}, &tensor) == MOEQ_OK);
  REQUIRE(tensor != nullptr);
  CHECK(tensor->version.major == DLPACK_MAJOR_VERSION);
  CHECK(tensor->dl_tensor.ndim == 3);
  CHECK(tensor->dl_tensor.shape[2] == 5);
  CHECK(reinterpret_cast<uintptr_t>(tensor->dl_tensor.data) % 64 == 0);
  std::memset(tensor->dl_tensor.data, 0x5a, 2 * 3 * 5 * 2);
  moeq_tensor_free(tensor);
}
