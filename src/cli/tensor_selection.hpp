// Which tensors of a checkpoint `moeq quantize` turns into 4-bit ones.
#pragma once

#include "safetensors/header.hpp"

namespace moeq::cli {

enum class Selection {
  Experts,    // expert weights only: what bitsandbytes leaves in 16 bits
  AllLinear,  // experts plus every other linear weight, as bitsandbytes would quantize them
};

// A float32/float16/bfloat16 MoE expert weight: a fused 3-D
// `...experts.gate_up_proj` / `...experts.down_proj` (transformers v5, gpt-oss),
// or a per-expert 2-D `...experts.<e>.{gate,up,down}_proj.weight` /
// `...experts.<e>.{w1,w2,w3}.weight` (original checkpoints, Mixtral).
bool is_expert_weight(const safetensors::TensorInfo& tensor);

// A 2-D float `*.weight` of what transformers builds as an nn.Linear: not an
// embedding or a norm (routers and the output head are linear layers).
bool is_linear_weight(const safetensors::TensorInfo& tensor);

// A linear weight (above) that is neither the output head nor an MoE router
// (quantizing a router changes which experts run).
bool is_other_linear_weight(const safetensors::TensorInfo& tensor);

bool should_quantize(const safetensors::TensorInfo& tensor, Selection selection);

}  // namespace moeq::cli
