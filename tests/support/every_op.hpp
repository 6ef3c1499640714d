// Every CPU operation of moeq over one fixed set of inputs, each run returning the
// bytes it wrote: the workload of the concurrency and determinism suites. The
// sizes are large enough for every OpenMP region to use several threads.
#pragma once

#include "support/expert_gemm_case.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace moeq_test {

enum class Op { Quantize, Dequantize, Forward, Backward, Swiglu, SwigluBackward };
constexpr Op kEveryOp[] = {Op::Quantize, Op::Dequantize, Op::Forward, Op::Backward, Op::Swiglu, Op::SwigluBackward};

inline const char* op_name(Op op) {
  switch (op) {
    case Op::Quantize: return "quantize";
    case Op::Dequantize: return "dequantize";
    case Op::Forward: return "expert GEMM forward";
    case Op::Backward: return "expert GEMM backward";
    case Op::Swiglu: return "SwiGLU";
    case Op::SwigluBackward: return "SwiGLU backward";
  }
  return "?";
}

// 8 experts (one without rows), K 512, N 256, rank 8, bfloat16 activations with
// float32 LoRA in PEFT's lora_B layout, nested NF4 weight.
inline ExpertGemmCase every_op_case() {
  ExpertGemmCase spec;
  spec.format = MOEQ_FORMAT_NF4;
  spec.blocksize = 64;
  spec.nested = true;
  spec.in_features = 512;
  spec.out_features = 256;
  spec.rank = 8;
  spec.rows_per_expert = {40, 0, 77, 3, 60, 25, 51, 44};
  spec.unrouted_rows = 2;
  spec.activation = bfloat16_type();
  spec.lora = float32_type();
  spec.peft_lora_b = true;
  return spec;
}

// The SwiGLU ops read the GEMM's grad_y as gate_up ([M, 2 x 128]): the forward as
// plain SwiGLU over halves (a NULL config), the backward in gpt-oss' clamped,
// interleaved form.
inline moeq_swiglu_config every_op_swiglu_backward_config() {
  return moeq_swiglu_config{sizeof(moeq_swiglu_config), MOEQ_GATE_UP_INTERLEAVED, 1.702f, 7.0f, 1.0f};
}

class EveryOp {
 public:
  explicit EveryOp(uint64_t seed)
      : rng_(seed), gemm_(every_op_case(), rng_), quantize_input_(bfloat16_type(), {1024, 1024}) {
    quantize_input_.fill_normal(rng_);
    const ExpertGemmCase& c = gemm_.spec;
    grad_y_ = activation_tensor(c.activation, c.rows(), c.out_features, 0);
    grad_y_.fill_normal(rng_);
    swiglu_grad_ = activation_tensor(c.activation, c.rows(), c.out_features / 2, 0);
    swiglu_grad_.fill_normal(rng_);
  }
  EveryOp(const EveryOp&) = delete;
  EveryOp& operator=(const EveryOp&) = delete;

  // Runs `op` into fresh outputs; the status and the bytes of every output. Safe
  // to call from several threads at once: the inputs are only read.
  moeq_status run(Op op, std::vector<uint8_t>& bytes) {
    bytes.clear();
    const ExpertGemmCase& c = gemm_.spec;
    ExpertGemmInputs& in = gemm_;
    switch (op) {
      case Op::Quantize: {
        HostQTensor out(MOEQ_FORMAT_NF4, 64, true, {1024, 1024}, bfloat16_type());
        const moeq_quant_config config = out.config();
        const moeq_status status =
            moeq_quantize(quantize_input_.dl(), &config, out.q(), nullptr, 0, nullptr);
        for (HostTensor* part :
             {&out.packed, &out.absmax, &out.nested_absmax, &out.nested_code, &out.nested_offset})
          append(bytes, *part);
        return status;
      }
      case Op::Dequantize: {
        HostTensor out(bfloat16_type(), c.weight_shape());
        const moeq_status status = moeq_dequantize(in.weight.q(), out.dl(), nullptr);
        append(bytes, out);
        return status;
      }
      case Op::Forward: {
        HostTensor y = activation_tensor(c.activation, c.rows(), c.out_features, 0);
        HostTensor x_lora_a(float32_type(), {c.rows(), c.rank});
        const moeq_expert_gemm_args args = forward_args(in, y.dl(), x_lora_a.dl());
        const moeq_status status = moeq_expert_gemm_lora(&args, nullptr);
        append(bytes, y);
        append(bytes, x_lora_a);
        return status;
      }
      case Op::Backward: {
        HostTensor grad_x = activation_tensor(c.activation, c.rows(), c.in_features, 0);
        HostTensor grad_lora_a(c.lora, {c.experts(), c.rank, c.in_features});
        HostTensor grad_lora_b =
            lora_b_tensor(c.lora, c.experts(), c.out_features, c.rank, c.peft_lora_b);
        const moeq_expert_gemm_grad_args args =
            backward_args(in, grad_y_.dl(), grad_x.dl(), grad_lora_a.dl(), grad_lora_b.dl());
        const moeq_status status = moeq_expert_gemm_lora_backward(&args, nullptr);
        append(bytes, grad_x);
        append(bytes, grad_lora_a);
        append(bytes, grad_lora_b);
        return status;
      }
      case Op::Swiglu: {
        HostTensor out = activation_tensor(c.activation, c.rows(), c.out_features / 2, 0);
        const moeq_status status = moeq_swiglu(nullptr, grad_y_.dl(), out.dl(), nullptr);
        append(bytes, out);
        return status;
      }
      case Op::SwigluBackward: {
        HostTensor grad_gate_up = activation_tensor(c.activation, c.rows(), c.out_features, 0);
        const moeq_swiglu_config config = every_op_swiglu_backward_config();
        const moeq_status status =
            moeq_swiglu_backward(&config, grad_y_.dl(), swiglu_grad_.dl(), grad_gate_up.dl(), nullptr);
        append(bytes, grad_gate_up);
        return status;
      }
    }
    return MOEQ_ERR_INTERNAL;
  }

 private:
  static void append(std::vector<uint8_t>& bytes, HostTensor& tensor) {
    bytes.insert(bytes.end(), tensor.bytes().begin(), tensor.bytes().end());
  }

  std::mt19937_64 rng_;
  ExpertGemmInputs gemm_;
  HostTensor quantize_input_, grad_y_, swiglu_grad_;
};

}  // namespace moeq_test
