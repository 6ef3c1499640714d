// libFuzzer target: every entry point of moeq.h. Each input builds a valid call
// (quantize, dequantize, the expert GEMM forward or backward, a workspace query,
// a layout, a library-allocated tensor, or SwiGLU forward or backward), then changes a few of its descriptors
// (dtypes, ndim, shapes, strides, struct sizes, NULLs, offsets, devices, aliasing).
// Memory always matches what the descriptors claim, so the library must refuse
// anything inconsistent before it touches memory: ASan and UBSan watch.
#include "fuzz_qtensor.hpp"

#include <moeq/moeq.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

using namespace moeq_fuzz;

namespace {

DLDataType activation_type(FuzzInput& input) {
  const DLDataType types[] = {float32(), float16(), bfloat16()};
  return types[input.below(3)];
}

// A status must be a known one and, on failure, come with a message.
void expect_status(moeq_status status) {
  if (std::strcmp(moeq_status_name(status), "MOEQ_UNKNOWN_STATUS") == 0) std::abort();
  if (status != MOEQ_OK && moeq_last_error()[0] == '\0') std::abort();
  if (status == MOEQ_OK && moeq_last_error()[0] != '\0') std::abort();
}

void fuzz_layout(FuzzInput& input, Arena& arena) {
  moeq_quant_config config{sizeof(moeq_quant_config), MOEQ_FORMAT_NF4, 64, 0};
  config.format = static_cast<int32_t>(input.below(4));
  config.blocksize =
      static_cast<int32_t>(input.chance(4) ? input.size_value() : 16 << input.below(10));
  config.nested = static_cast<int32_t>(input.below(3));
  if (input.chance(4)) config.struct_size = struct_size(input).of(sizeof config);
  const int32_t ndim = static_cast<int32_t>(input.below(12)) - 1;
  std::vector<int64_t> shape(static_cast<size_t>(std::max(ndim, 0)));
  for (int64_t& size : shape) size = input.size_value();
  moeq_quant_layout layout{};
  layout.struct_size = input.chance(4) ? struct_size(input).of(sizeof layout) : sizeof layout;
  int64_t* shape_copy = reinterpret_cast<int64_t*>(arena.buffer(shape.size() * 8));
  std::copy(shape.begin(), shape.end(), shape_copy);
  const bool null_config = input.chance(16);
  const bool null_shape = input.chance(16);
  const bool null_out = input.chance(16);
  expect_status(moeq_quantized_layout(null_config ? nullptr : place_struct(arena, config), ndim,
                                      null_shape ? nullptr : shape_copy,
                                      null_out ? nullptr : place_struct(arena, layout)));
}

// A small tensor to quantize, or the logical tensor of a quantized one.
struct QuantCase {
  int32_t format;
  int32_t blocksize;
  bool nested;
  std::vector<int64_t> shape;
  DLDataType dtype;
};

QuantCase quant_case(FuzzInput& input) {
  const int32_t format = input.chance(2) ? MOEQ_FORMAT_NF4 : MOEQ_FORMAT_FP4;
  const int32_t blocksize = 32 << input.below(4);
  const bool nested = input.chance(2);
  std::vector<int64_t> shape(1 + input.below(3));
  for (int64_t& size : shape) size = input.below(48);
  const DLDataType dtype = activation_type(input);
  return {format, blocksize, nested, shape, dtype};
}

// Specs of a quantize call: [input, packed, absmax, nested_absmax, nested_code, nested_offset].
void fuzz_quantize(FuzzInput& input, Arena& arena) {
  const QuantCase c = quant_case(input);
  QTensorSpec out(c.format, c.blocksize, c.nested, c.shape, c.dtype);
  std::vector<TensorSpec> specs = {TensorSpec(c.dtype, c.shape)};
  specs.insert(specs.end(), out.buffers.begin(), out.buffers.end());
  moeq_quant_config config{sizeof(moeq_quant_config), c.format, c.blocksize, c.nested ? 1 : 0};
  size_t workspace_bytes = 0;
  bool with_workspace = false, null_config = false, null_out = false;
  for (uint32_t n = input.below(5); n > 0; --n) {
    const uint32_t target = input.below(static_cast<uint32_t>(specs.size()) + 4);
    if (target < specs.size()) {
      mutate(specs[target], input, static_cast<int>(specs.size()));
      continue;
    }
    switch (target - specs.size()) {
      case 0: out.mutate_descriptor(input); break;
      case 1:
        config.struct_size = struct_size(input).of(sizeof config);
        config.format = input.chance(2) ? config.format : static_cast<int32_t>(input.below(4));
        config.blocksize =
            input.chance(2) ? config.blocksize : static_cast<int32_t>(input.size_value());
        config.nested = input.chance(2) ? config.nested : static_cast<int32_t>(input.below(3));
        break;
      case 2:
        with_workspace = true;
        workspace_bytes = input.below(4096);
        break;
      case 3:
        null_config = input.chance(2);
        null_out = !null_config;
        break;
    }
  }
  const std::vector<DLTensor*> tensors = arena.materialize(specs);
  moeq_qtensor* q = place_struct(arena, out.assemble({tensors.begin() + 1, tensors.end()}));
  void* workspace = with_workspace ? arena.buffer(workspace_bytes) : nullptr;
  expect_status(moeq_quantize(tensors[0], null_config ? nullptr : place_struct(arena, config),
                              null_out ? nullptr : q, workspace, workspace_bytes, nullptr));
}

// Specs of a dequantize call: [packed, absmax, nested_absmax, nested_code, nested_offset, out].
void fuzz_dequantize(FuzzInput& input, Arena& arena) {
  const QuantCase c = quant_case(input);
  QTensorSpec q(c.format, c.blocksize, c.nested, c.shape, float32());
  std::vector<TensorSpec> specs = q.buffers;
  specs.emplace_back(c.dtype, c.shape);
  bool null_q = false;
  for (uint32_t n = input.below(5); n > 0; --n) {
    const uint32_t target = input.below(static_cast<uint32_t>(specs.size()) + 2);
    if (target < specs.size()) mutate(specs[target], input, static_cast<int>(specs.size()));
    else if (target == specs.size()) q.mutate_descriptor(input);
    else null_q = true;
  }
  const std::vector<DLTensor*> tensors = arena.materialize(specs);
  moeq_qtensor* descriptor = place_struct(arena, q.assemble(tensors));
  expect_status(moeq_dequantize(null_q ? nullptr : descriptor, tensors[5], nullptr));
}

// The expert GEMM's tensors, forward and backward, valid until mutated.
enum GemmTensor {
  kX,
  kPacked,
  kAbsmax,
  kNestedAbsmax,
  kNestedCode,
  kNestedOffset,
  kGroupEnd,
  kLoraA,
  kLoraB,
  kY,
  kXLoraA,
  kGradY,
  kGradX,
  kGradLoraA,
  kGradLoraB,
  kGemmTensorCount
};

struct GemmCall {
  QTensorSpec weight;
  std::vector<TensorSpec> specs;
  int32_t layout;
  float lora_scale = 0.5f;
  size_t workspace_bytes = 0;
  bool with_workspace = false, null_weight = false, null_args = false, null_bytes = false;
  StructSize args_size;
};

GemmCall gemm_call(FuzzInput& input) {
  const int32_t format = input.chance(2) ? MOEQ_FORMAT_NF4 : MOEQ_FORMAT_FP4;
  const int32_t blocksize = 32 << input.below(2);
  const bool nested = input.chance(2);
  const int32_t layout = static_cast<int32_t>(input.below(2));
  const int64_t experts = 1 + input.below(4);
  const int64_t last_dim = blocksize * (1 + input.below(2));
  const int64_t other_dim = 1 + input.below(48);
  const bool out_in = layout == MOEQ_LAYOUT_EXPERT_OUT_IN;
  const int64_t k = out_in ? last_dim : other_dim, n = out_in ? other_dim : last_dim;
  const int64_t rank_choices[] = {0, 1, 4, 8};
  const int64_t rank = rank_choices[input.below(4)];
  const int64_t rows = input.below(40);
  const DLDataType activation = activation_type(input);
  const DLDataType lora = input.chance(2) ? float32() : activation;
  GemmCall call{
      QTensorSpec(format, blocksize, nested, {experts, out_in ? n : k, out_in ? k : n}, float32()),
      std::vector<TensorSpec>(kGemmTensorCount), layout};
  std::vector<TensorSpec>& s = call.specs;
  s[kX] = TensorSpec(activation, {rows, k});
  if (input.chance(3)) s[kX].strides = std::vector<int64_t>{k + 3, 1};
  for (int i = 0; i < 5; ++i) s[kPacked + i] = call.weight.buffers[i];
  s[kGroupEnd] = TensorSpec(input.chance(2) ? int64() : int32(), {experts});
  int64_t end = 0;
  for (int64_t e = 0; e < experts; ++e) {
    end = std::min(rows, end + static_cast<int64_t>(input.below(16)));
    s[kGroupEnd].contents.push_back(end);
  }
  s[kLoraA] = TensorSpec(lora, {experts, rank, k});
  s[kLoraB] = TensorSpec(lora, {experts, n, rank});
  if (input.chance(2)) s[kLoraB].strides = std::vector<int64_t>{1, rank * experts, experts};
  s[kLoraA].present = s[kLoraB].present = rank > 0;
  s[kY] = TensorSpec(activation, {rows, n});
  s[kXLoraA] = TensorSpec(input.chance(2) ? float32() : activation, {rows, rank});
  s[kXLoraA].present = rank > 0 && input.chance(2);
  s[kGradY] = TensorSpec(activation, {rows, n});
  s[kGradX] = TensorSpec(activation, {rows, k});
  s[kGradLoraA] = TensorSpec(lora, {experts, rank, k});
  s[kGradLoraB] = TensorSpec(lora, s[kLoraB].shape);
  s[kGradLoraB].strides = s[kLoraB].strides;
  s[kGradX].present = rank == 0 || input.chance(2);
  s[kGradLoraA].present = rank > 0 && input.chance(2);
  s[kGradLoraB].present = rank > 0 && input.chance(2);
  for (uint32_t m = input.below(6); m > 0; --m) {
    const uint32_t target = input.below(kGemmTensorCount + 6);
    if (target < kGemmTensorCount) {
      mutate(s[target], input, kGemmTensorCount);
      continue;
    }
    switch (target - kGemmTensorCount) {
      case 0: call.weight.mutate_descriptor(input); break;
      case 1:
        call.layout = static_cast<int32_t>(input.chance(2) ? input.below(3) : input.raw64());
        break;
      case 2: {
        const float scales[] = {0.0f, -1.0f, 1e30f, __builtin_inff(), __builtin_nanf("")};
        call.lora_scale = scales[input.below(5)];
        break;
      }
      case 3:
        call.with_workspace = true;
        call.workspace_bytes = input.below(4096);
        break;
      case 4: call.args_size = struct_size(input); break;
      case 5:
        call.null_weight = input.chance(3);
        call.null_args = !call.null_weight && input.chance(2);
        call.null_bytes = !call.null_weight && !call.null_args;
        break;
    }
  }
  return call;
}

// Fields forward and backward share, then the struct placed at its claimed size.
template <class Args>
Args* place_gemm_args(Arena& arena, GemmCall& call, const std::vector<DLTensor*>& t, Args args) {
  args.struct_size = call.args_size.of(sizeof(Args));
  args.x = t[kX];
  moeq_qtensor* weight =
      place_struct(arena, call.weight.assemble({t.begin() + kPacked, t.begin() + kGroupEnd}));
  args.weight = call.null_weight ? nullptr : weight;
  args.weight_layout = call.layout;
  args.group_end = t[kGroupEnd];
  args.lora_a = t[kLoraA];
  args.lora_b = t[kLoraB];
  args.lora_scale = call.lora_scale;
  args.x_lora_a = t[kXLoraA];
  args.workspace = call.with_workspace ? arena.buffer(call.workspace_bytes) : nullptr;
  args.workspace_bytes = call.workspace_bytes;
  return call.null_args ? nullptr : place_struct(arena, args);
}

void fuzz_forward(FuzzInput& input, Arena& arena, bool workspace_query) {
  GemmCall call = gemm_call(input);
  const std::vector<DLTensor*> t = arena.materialize(call.specs);
  moeq_expert_gemm_args args{};
  args.y = t[kY];
  moeq_expert_gemm_args* placed = place_gemm_args(arena, call, t, args);
  size_t bytes = 0;
  expect_status(workspace_query
                    ? moeq_expert_gemm_workspace_size(placed, call.null_bytes ? nullptr : &bytes)
                    : moeq_expert_gemm_lora(placed, nullptr));
}

void fuzz_backward(FuzzInput& input, Arena& arena, bool workspace_query) {
  GemmCall call = gemm_call(input);
  const std::vector<DLTensor*> t = arena.materialize(call.specs);
  moeq_expert_gemm_grad_args args{};
  args.grad_y = t[kGradY];
  args.grad_x = t[kGradX];
  args.grad_lora_a = t[kGradLoraA];
  args.grad_lora_b = t[kGradLoraB];
  moeq_expert_gemm_grad_args* placed = place_gemm_args(arena, call, t, args);
  size_t bytes = 0;
  expect_status(workspace_query ? moeq_expert_gemm_grad_workspace_size(
                                      placed, call.null_bytes ? nullptr : &bytes)
                                : moeq_expert_gemm_lora_backward(placed, nullptr));
}

// A float the fuzzer picks: a usual value, or any bit pattern (NaN, infinities, ...).
float fuzz_float(FuzzInput& input, float usual) {
  if (!input.chance(4)) return usual;
  const uint32_t bits = static_cast<uint32_t>(input.raw64());
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// Specs of a SwiGLU call: [gate_up, out (forward) or grad_out (backward), grad_gate_up].
void fuzz_swiglu(FuzzInput& input, Arena& arena, bool backward) {
  const DLDataType dtype = activation_type(input);
  const int64_t rows = input.below(40), cols = input.below(40);
  std::vector<TensorSpec> specs = {TensorSpec(dtype, {rows, 2 * cols}), TensorSpec(dtype, {rows, cols}),
                                   TensorSpec(dtype, {rows, 2 * cols})};
  if (input.chance(3)) specs[0].strides = std::vector<int64_t>{2 * cols + 5, 1};
  const bool gpt_oss = input.chance(2);
  moeq_swiglu_config config{sizeof(moeq_swiglu_config), gpt_oss ? MOEQ_GATE_UP_INTERLEAVED : MOEQ_GATE_UP_HALVES,
                            gpt_oss ? 1.702f : 1.0f, gpt_oss ? 7.0f : INFINITY, gpt_oss ? 1.0f : 0.0f};
  bool null_config = false;
  for (uint32_t n = input.below(5); n > 0; --n) {
    const uint32_t target = input.below(static_cast<uint32_t>(specs.size()) + 2);
    if (target < specs.size()) {
      mutate(specs[target], input, static_cast<int>(specs.size()));
    } else if (target == specs.size()) {
      config.struct_size = struct_size(input).of(sizeof config);
      config.layout = static_cast<int32_t>(input.below(4)) - 1;
      config.alpha = fuzz_float(input, config.alpha);
      config.limit = fuzz_float(input, config.limit);
      config.up_offset = fuzz_float(input, config.up_offset);
    } else {
      null_config = true;
    }
  }
  const std::vector<DLTensor*> tensors = arena.materialize(specs);
  const moeq_swiglu_config* config_arg = null_config ? nullptr : place_struct(arena, config);
  expect_status(backward ? moeq_swiglu_backward(config_arg, tensors[0], tensors[1], tensors[2], nullptr)
                         : moeq_swiglu(config_arg, tensors[0], tensors[1], nullptr));
}

// Library-allocated tensors: claims past 64 MiB that do not overflow are real
// requests the library would serve, so they are not made.
void fuzz_tensor_empty(FuzzInput& input, Arena& arena) {
  TensorSpec spec(float32(), {});
  for (uint32_t n = 1 + input.below(4); n > 0; --n) mutate(spec, input, 1);
  __int128 bytes =
      std::max<__int128>(1, (static_cast<__int128>(spec.dtype.bits) * spec.dtype.lanes + 7) / 8);
  for (int64_t size : spec.shape)  // saturated: only "small", "large" and "overflowing" matter
    bytes = std::min(bytes * std::clamp<int64_t>(size, 0, int64_t{1} << 40), __int128{1} << 80);
  if (bytes > (__int128{1} << 26) && bytes < (__int128{1} << 60)) return;
  int64_t* shape = reinterpret_cast<int64_t*>(arena.buffer(spec.shape.size() * 8));
  std::copy(spec.shape.begin(), spec.shape.end(), shape);
  DLManagedTensorVersioned* tensor = nullptr;
  const moeq_status status =
      moeq_tensor_empty(spec.ndim, spec.shape_null ? nullptr : shape, spec.dtype, spec.device,
                        input.chance(16) ? nullptr : &tensor);
  expect_status(status);
  if (status == MOEQ_OK) {
    // The allocation holds every byte the shape claims.
    if (bytes > 0 && tensor->dl_tensor.data != nullptr)
      std::memset(tensor->dl_tensor.data, 0x5a, static_cast<size_t>(bytes));
    moeq_tensor_free(tensor);
  } else if (tensor != nullptr) {
    std::abort();  // a failed call hands out nothing
  }
  moeq_tensor_free(nullptr);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // One thread: a finding reproduces from its input alone.
  omp_set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  Arena arena(size > 0 ? data[size - 1] : 0);
  switch (input.below(11)) {
    case 0: fuzz_layout(input, arena); break;
    case 1: fuzz_quantize(input, arena); break;
    case 2: fuzz_dequantize(input, arena); break;
    case 3: fuzz_forward(input, arena, false); break;
    case 4: fuzz_backward(input, arena, false); break;
    case 5: fuzz_forward(input, arena, true); break;
    case 6: fuzz_backward(input, arena, true); break;
    case 7: fuzz_tensor_empty(input, arena); break;
    case 8: {
      const moeq_status status = static_cast<moeq_status>(input.raw64());
      if (moeq_status_name(status) == nullptr || moeq_last_error() == nullptr) std::abort();
      break;
    }
    case 9: fuzz_swiglu(input, arena, false); break;
    case 10: fuzz_swiglu(input, arena, true); break;
  }
  return 0;
}
