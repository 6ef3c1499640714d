// The synthetic checkpoint: key names, shapes, values and sharding.
#include "cli/synthetic_checkpoint.hpp"

#include "cli/scratch_buffer.hpp"
#include "core/scalar.hpp"
#include "safetensors/sharded_index.hpp"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>
#include <random>
#include <string>
#include <thread>

#include <omp.h>

namespace moeq::cli {
namespace {

using safetensors::Dtype;
using safetensors::TensorSpec;

constexpr int64_t kElementsPerStream = int64_t{1} << 16;

std::string layer_key(int64_t layer, const std::string& rest) {
  return "model.layers." + std::to_string(layer) + "." + rest;
}

std::vector<TensorSpec> layer_specs(const SyntheticCheckpoint& c, int64_t layer) {
  const int64_t H = c.hidden, I = c.intermediate, E = c.experts;
  std::vector<TensorSpec> specs{
      {layer_key(layer, "input_layernorm.weight"), c.dtype, {H}},
      {layer_key(layer, "self_attn.q_proj.weight"), c.dtype, {H, H}},
      {layer_key(layer, "self_attn.k_proj.weight"), c.dtype, {H, H}},
      {layer_key(layer, "self_attn.v_proj.weight"), c.dtype, {H, H}},
      {layer_key(layer, "self_attn.o_proj.weight"), c.dtype, {H, H}},
      {layer_key(layer, "post_attention_layernorm.weight"), c.dtype, {H}},
      {layer_key(layer, "mlp.gate.weight"), c.dtype, {E, H}},
      {layer_key(layer, "mlp.gate.e_score_correction_bias"), Dtype::F32, {E}},
      {layer_key(layer, "mlp.shared_experts.gate_proj.weight"), c.dtype, {I, H}},
      {layer_key(layer, "mlp.shared_experts.up_proj.weight"), c.dtype, {I, H}},
      {layer_key(layer, "mlp.shared_experts.down_proj.weight"), c.dtype, {H, I}}};
  if (c.layout == ExpertLayout::Fused) {
    specs.push_back({layer_key(layer, "mlp.experts.gate_up_proj"), c.dtype, {E, 2 * I, H}});
    specs.push_back({layer_key(layer, "mlp.experts.down_proj"), c.dtype, {E, H, I}});
  } else {
    for (int64_t e = 0; e < E; ++e) {
      const std::string expert = "mlp.experts." + std::to_string(e) + ".";
      specs.push_back({layer_key(layer, expert + "gate_proj.weight"), c.dtype, {I, H}});
      specs.push_back({layer_key(layer, expert + "up_proj.weight"), c.dtype, {I, H}});
      specs.push_back({layer_key(layer, expert + "down_proj.weight"), c.dtype, {H, I}});
    }
  }
  return specs;
}

// Each run of kElementsPerStream elements has its own generator, so threads
// produce the same values in any order.
void fill(const TensorSpec& spec, uint64_t seed, int threads, uint8_t* bytes) {
  int64_t count = 1;
  for (int64_t size : spec.shape) count *= size;
  const bool is_norm = spec.name.find("norm") != std::string::npos;
  uint64_t tensor_seed = seed ^ 0xcbf29ce484222325ull;  // FNV-1a of the name: the same on every platform
  for (const char character : spec.name)
    tensor_seed = (tensor_seed ^ static_cast<uint8_t>(character)) * 0x100000001b3ull;
  const int64_t streams = (count + kElementsPerStream - 1) / kElementsPerStream;
#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (int64_t stream = 0; stream < streams; ++stream) {
    std::mt19937_64 generator(tensor_seed + static_cast<uint64_t>(stream) * 0x9E3779B97F4A7C15ull);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    const int64_t end = std::min(count, (stream + 1) * kElementsPerStream);
    for (int64_t i = stream * kElementsPerStream; i < end; ++i) {
      const float value = is_norm ? 1.0f : normal(generator);
      if (spec.dtype == Dtype::F32) reinterpret_cast<float*>(bytes)[i] = value;
      else if (spec.dtype == Dtype::F16) reinterpret_cast<uint16_t*>(bytes)[i] = float_to_float16_bits(value);
      else reinterpret_cast<uint16_t*>(bytes)[i] = float_to_bfloat16_bits(value);
    }
  }
}

std::string shard_name(int64_t shard, int64_t shards) {
  if (shards == 1) return "model.safetensors";
  char name[64];
  std::snprintf(name, sizeof name, "model-%05lld-of-%05lld.safetensors", (long long)shard + 1,
                (long long)shards);
  return name;
}

uint64_t byte_size(const TensorSpec& spec) {
  uint64_t count = 1;
  for (int64_t size : spec.shape) count *= static_cast<uint64_t>(size);
  return count * safetensors::dtype_bytes(spec.dtype);
}

// Consecutive layers share a shard; the embedding goes to the first shard and
// the head to the last, as transformers' save_pretrained does.
std::vector<std::vector<TensorSpec>> specs_by_shard(const SyntheticCheckpoint& c) {
  std::vector<std::vector<TensorSpec>> shards(static_cast<size_t>(c.shards));
  shards.front().push_back({"model.embed_tokens.weight", c.dtype, {c.vocabulary, c.hidden}});
  for (int64_t layer = 0; layer < c.layers; ++layer)
    for (TensorSpec& spec : layer_specs(c, layer))
      shards[layer * c.shards / c.layers].push_back(std::move(spec));
  shards.back().push_back({"model.norm.weight", c.dtype, {c.hidden}});
  shards.back().push_back({"lm_head.weight", c.dtype, {c.vocabulary, c.hidden}});
  return shards;
}

}  // namespace

std::vector<TensorSpec> synthetic_tensor_specs(const SyntheticCheckpoint& c) {
  std::vector<TensorSpec> specs;
  for (std::vector<TensorSpec>& shard : specs_by_shard(c))
    for (TensorSpec& spec : shard) specs.push_back(std::move(spec));
  return specs;
}

std::vector<std::filesystem::path> write_synthetic_checkpoint(const std::filesystem::path& folder,
                                                              const SyntheticCheckpoint& c) {
  std::filesystem::create_directories(folder);
  const std::vector<std::vector<TensorSpec>> shards = specs_by_shard(c);
  std::vector<std::filesystem::path> written;
  std::map<std::string, std::string> weight_map;
  uint64_t total_size = 0;
  for (int64_t shard = 0; shard < c.shards; ++shard) {
    const std::string name = shard_name(shard, c.shards);
    for (const TensorSpec& spec : shards[shard]) {
      weight_map[spec.name] = name;
      total_size += byte_size(spec);
    }
    written.push_back(folder / name);
  }
  // The shards side by side, the cores shared among them: one thread's writes
  // into the page cache would otherwise be the limit.
  const int shard_threads = static_cast<int>(std::min<int64_t>(c.shards, omp_get_max_threads()));
  const int fill_threads = std::max(1, omp_get_max_threads() / shard_threads);
  std::vector<std::exception_ptr> failures(static_cast<size_t>(c.shards));
  std::vector<std::thread> threads;
  for (int first = 0; first < shard_threads; ++first)
    threads.emplace_back([&, first] {
      ScratchBuffer buffer;
      for (int64_t shard = first; shard < c.shards; shard += shard_threads) {
        try {
          safetensors::Writer writer(written[shard], shards[shard], {{"format", "pt"}});
          for (const TensorSpec& spec : shards[shard]) {
            uint8_t* bytes = buffer.get(byte_size(spec));
            fill(spec, c.seed, fill_threads, bytes);
            writer.write(spec.name, bytes, byte_size(spec));
          }
          writer.commit();
        } catch (...) {
          failures[shard] = std::current_exception();
        }
      }
    });
  for (std::thread& thread : threads) thread.join();
  for (const std::exception_ptr& failure : failures)
    if (failure) std::rethrow_exception(failure);
  if (c.shards > 1)
    safetensors::write_sharded_index(folder / "model.safetensors.index.json", weight_map, total_size);
  return written;
}

}  // namespace moeq::cli
