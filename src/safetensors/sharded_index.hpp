// model.safetensors.index.json: which shard file holds each tensor of a sharded checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace moeq::safetensors {

struct ShardedIndex {
  std::filesystem::path path;
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name
  std::vector<std::string> shard_names;           // each once, sorted
};

// Reads and checks an index: a JSON object with a "weight_map" of strings, whose
// shard names are plain file names (no directories: an index must not point
// outside its own folder). Throws Error.
ShardedIndex read_sharded_index(const std::filesystem::path& path);

// Writes {"metadata": {"total_size": ...}, "weight_map": {...}} as transformers
// does, through a temporary file. Throws Error.
void write_sharded_index(const std::filesystem::path& path,
                         const std::map<std::string, std::string>& weight_map, uint64_t total_size);

}  // namespace moeq::safetensors
