// Where `moeq quantize` writes: one .safetensors file, or a folder mirroring
// the input's shards with a fresh model.safetensors.index.json.
#pragma once

#include "safetensors/checkpoint.hpp"

#include <filesystem>
#include <vector>

namespace moeq::cli {

struct OutputFile {
  std::filesystem::path path;
  std::vector<const safetensors::File*> sources;  // their tensors, in this order
};

struct OutputPlan {
  std::vector<OutputFile> files;
  std::filesystem::path index_path;  // empty: no index to write
  std::filesystem::path config_path;  // where config.json goes; empty for a single-file output
  std::filesystem::path folder_to_create;  // empty: the folder exists already
};

// `output` ending in .safetensors: one file with every tensor. Otherwise a
// folder: each input file under its own name, plus an index when the input had
// several files, and config.json. Refuses to overwrite an input (throws safetensors::Error).
OutputPlan plan_outputs(const safetensors::Checkpoint& input, const std::filesystem::path& output);

}  // namespace moeq::cli
