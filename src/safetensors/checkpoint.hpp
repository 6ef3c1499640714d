// A checkpoint as the command line names it: safetensors files, a sharded
// index, or a folder holding either, opened as one set of uniquely named tensors.
#pragma once

#include "safetensors/file.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace moeq::safetensors {

struct TensorRef {
  const File* file = nullptr;
  const TensorInfo* info = nullptr;
};

class Checkpoint {
 public:
  // Throws Error for a missing path or shard, a malformed file, an index entry
  // its shard does not hold, or a tensor name found in two files.
  explicit Checkpoint(const std::vector<std::filesystem::path>& inputs);

  const std::vector<std::unique_ptr<File>>& files() const { return files_; }
  const TensorRef* find(const std::string& name) const;  // NULL if absent
  size_t tensor_count() const { return by_name_.size(); }
  // Several files (or an index): the output mirrors the shards.
  bool is_sharded() const { return files_.size() > 1 || from_index_; }

 private:
  void open_index(const std::filesystem::path& index_path);
  void open_folder(const std::filesystem::path& folder);
  const File& open_file(const std::filesystem::path& path);

  std::vector<std::unique_ptr<File>> files_;
  std::unordered_map<std::string, TensorRef> by_name_;
  bool from_index_ = false;
};

}  // namespace moeq::safetensors
