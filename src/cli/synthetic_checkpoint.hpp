// MoE checkpoints with random weights in the key layouts of Hugging Face
// checkpoints (GLM-4.7-Flash-like), for the tests, the benchmark and the demo.
#pragma once

#include "safetensors/writer.hpp"

#include <cstdint>
#include <filesystem>
#include <vector>

namespace moeq::cli {

enum class ExpertLayout {
  Fused,      // transformers v5: mlp.experts.gate_up_proj [E, 2I, H], mlp.experts.down_proj [E, H, I]
  PerExpert,  // original checkpoints: mlp.experts.<e>.{gate,up,down}_proj.weight
};

struct SyntheticCheckpoint {
  ExpertLayout layout = ExpertLayout::Fused;
  int64_t layers = 2;
  int64_t experts = 4;
  int64_t hidden = 128;        // H
  int64_t intermediate = 64;   // I, per expert
  int64_t vocabulary = 256;
  safetensors::Dtype dtype = safetensors::Dtype::BF16;
  int64_t shards = 1;          // > 1: model-0000k-of-0000n.safetensors plus an index
  uint64_t seed = 1;
};

// Every tensor of the checkpoint, in the order they are spread over shards.
std::vector<safetensors::TensorSpec> synthetic_tensor_specs(const SyntheticCheckpoint& checkpoint);

// Writes the checkpoint into `folder` (created if needed): weights ~ N(0, 0.02²),
// norms 1; the same bytes for the same seed on any number of threads. Returns
// the safetensors files written (the index, if any, is not in the list).
std::vector<std::filesystem::path> write_synthetic_checkpoint(const std::filesystem::path& folder,
                                                              const SyntheticCheckpoint& checkpoint);

}  // namespace moeq::cli
