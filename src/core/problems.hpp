// Validated, backend-neutral descriptions of each operation. The API layer
// (src/api/) checks the DLPack arguments and builds these; the CPU backend
// (src/cpu/) and the CUDA kernels (kernels/) consume them and never see DLPack.
#pragma once

#include "core/format.hpp"
#include "core/scalar.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>

namespace moeq {

// A 4-bit tensor's buffers, all on one device.
struct QuantizedBuffers {
  Format format = Format::NF4;
  int64_t blocksize = 64;
  bool nested = false;
  int64_t numel = 0;
  uint8_t* packed = nullptr;         // ceil(numel / 2) bytes
  float* absmax = nullptr;           // [nblocks] when plain
  uint8_t* absmax_codes = nullptr;   // [nblocks] when nested
  float* nested_absmax = nullptr;    // [ceil(nblocks / 256)] when nested
  float* nested_code = nullptr;      // [256] when nested
  float* nested_offset = nullptr;    // [1] when nested

  int64_t block_count() const { return (numel + blocksize - 1) / blocksize; }
  int64_t nested_block_count() const { return (block_count() + 255) / 256; }
};

struct QuantizeProblem {
  int device_id = 0;                 // CUDA ordinal (ignored on the CPU)
  const void* input = nullptr;       // contiguous, `input_type`
  ScalarType input_type = ScalarType::Float32;
  QuantizedBuffers out;              // written by the backend
  void* workspace = nullptr;         // GPU nested scratch (may be null: allocate)
  size_t workspace_bytes = 0;
};

struct DequantizeProblem {
  int device_id = 0;
  QuantizedBuffers in;               // read only
  void* output = nullptr;            // contiguous, `output_type`, in.numel elements
  ScalarType output_type = ScalarType::Float32;
};

// A strided view of a matrix or a stack of matrices; strides in elements.
struct StridedTensor {
  void* data = nullptr;
  ScalarType type = ScalarType::Float32;
  int64_t stride[3] = {0, 0, 0};
  bool present() const { return data != nullptr; }
};

// The dimensions of the expert GEMM: y[M, N] from x[M, K], E experts, rank r.
struct ExpertGemmShape {
  int64_t rows = 0;       // M
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  int64_t experts = 0;    // E
  int64_t rank = 0;       // r (0: no LoRA)
};

enum class WeightLayout : int32_t { ExpertOutIn = 0, ExpertInOut = 1 };

// Shared by forward and backward. group_end is a device (or host, for CPU) array
// of E cumulative row ends; kernels clamp it to [0, M] and treat a decrease as an
// empty expert, so malformed routing never writes out of bounds.
struct ExpertGemmCommon {
  int device_id = 0;
  ExpertGemmShape shape;
  QuantizedBuffers weight;      // logical [E, N, K] or [E, K, N]
  WeightLayout layout = WeightLayout::ExpertOutIn;
  const void* group_end = nullptr;
  bool group_end_is_int64 = false;
  ScalarType activation_type = ScalarType::Float32;  // x, y, grad_x, grad_y
  StridedTensor x;              // [M, K]: stride[0] rows, stride[1] == 1
  StridedTensor lora_a;         // [E, r, K], any strides (absent: no LoRA)
  StridedTensor lora_b;         // [E, N, r], any strides
  float lora_scale = 1.0f;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

struct ExpertGemmProblem {
  ExpertGemmCommon common;
  StridedTensor y;              // [M, N]: stride[1] == 1
  StridedTensor x_lora_a;       // optional output [M, r]
};

struct ExpertGemmGradProblem {
  ExpertGemmCommon common;      // common.x may be absent when only grad_x is asked
  StridedTensor grad_y;         // [M, N]
  StridedTensor x_lora_a;       // optional input [M, r]
  StridedTensor grad_x;         // optional [M, K]
  StridedTensor grad_lora_a;    // optional [E, r, K]
  StridedTensor grad_lora_b;    // optional [E, N, r]
};

// The gated activation's form (moeq_swiglu_config, validated); the defaults are
// SwiGLU over halves (a NULL config).
struct SwigluParams {
  float alpha = 1.0f;
  float limit = std::numeric_limits<float>::infinity();  // no clamp
  float up_offset = 0.0f;
  bool interleaved = false;
};

// The gated activation between the projections (moeq_swiglu, moeq_swiglu_backward):
// for row m < rows and i < cols, gate and up at gate_up[m, gate_column(i)] and
// gate_up[m, up_column(i)] (core/swiglu_math.hpp). All tensors of `type`, row-major
// with padded rows (stride[0]) and adjacent columns; rows and cols both > 0.
struct SwigluProblem {
  int device_id = 0;
  ScalarType type = ScalarType::Float32;
  int64_t rows = 0;  // M
  int64_t cols = 0;  // I
  SwigluParams params;
  StridedTensor gate_up;       // [M, 2I]
  StridedTensor out;           // forward: [M, I]
  StridedTensor grad_out;      // backward: [M, I]
  StridedTensor grad_gate_up;  // backward: [M, 2I]
};

}  // namespace moeq
