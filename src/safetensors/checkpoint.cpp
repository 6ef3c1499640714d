// Resolving command-line inputs into files, and checking that an index and its
// shards agree.
#include "safetensors/checkpoint.hpp"

#include "safetensors/error.hpp"
#include "safetensors/sharded_index.hpp"

#include <algorithm>

namespace moeq::safetensors {
namespace {

namespace fs = std::filesystem;

bool has_suffix(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<fs::path> folder_entries_ending_in(const fs::path& folder, const std::string& suffix) {
  std::vector<fs::path> found;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder))
    if (entry.is_regular_file() && has_suffix(entry.path().filename().string(), suffix))
      found.push_back(entry.path());
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace

Checkpoint::Checkpoint(const std::vector<fs::path>& inputs) {
  if (inputs.empty()) throw Error("no input checkpoint given");
  for (const fs::path& input : inputs) {
    std::error_code error;
    const fs::file_status status = fs::status(input, error);
    if (!fs::exists(status)) throw Error(input.string() + ": no such file or folder");
    if (fs::is_directory(status)) open_folder(input);
    else if (has_suffix(input.string(), ".json")) open_index(input);
    else open_file(input);
  }
}

const TensorRef* Checkpoint::find(const std::string& name) const {
  const auto found = by_name_.find(name);
  return found == by_name_.end() ? nullptr : &found->second;
}

// A folder is read through its index when it has one (preferring the name
// transformers writes), otherwise as every *.safetensors file in it.
void Checkpoint::open_folder(const fs::path& folder) {
  const std::vector<fs::path> indexes = folder_entries_ending_in(folder, ".safetensors.index.json");
  if (!indexes.empty()) {
    const fs::path preferred = folder / "model.safetensors.index.json";
    if (std::find(indexes.begin(), indexes.end(), preferred) != indexes.end()) return open_index(preferred);
    if (indexes.size() > 1)
      throw Error(folder.string() + ": several *.safetensors.index.json files; name the one to read");
    return open_index(indexes.front());
  }
  const std::vector<fs::path> files = folder_entries_ending_in(folder, ".safetensors");
  if (files.empty()) throw Error(folder.string() + ": no *.safetensors files and no index");
  for (const fs::path& file : files) open_file(file);
}

void Checkpoint::open_index(const fs::path& index_path) {
  const ShardedIndex index = read_sharded_index(index_path);
  from_index_ = true;
  std::unordered_map<std::string, const File*> shards;
  for (const std::string& shard : index.shard_names) {
    const fs::path shard_path = index_path.parent_path() / shard;
    std::error_code error;
    if (!fs::is_regular_file(shard_path, error))
      throw Error(index_path.string() + ": shard '" + shard + "' is missing (expected " +
                  shard_path.string() + ")");
    shards[shard] = &open_file(shard_path);
  }
  for (const auto& [tensor, shard] : index.weight_map)
    if (const TensorRef* found = find(tensor); found == nullptr || found->file != shards.at(shard))
      throw Error(index_path.string() + ": the index puts '" + tensor + "' in " + shard +
                  ", which does not hold it");
}

const File& Checkpoint::open_file(const fs::path& path) {
  files_.push_back(std::make_unique<File>(path));
  const File& file = *files_.back();
  for (const TensorInfo& tensor : file.tensors()) {
    const auto [existing, inserted] = by_name_.emplace(tensor.name, TensorRef{&file, &tensor});
    if (!inserted)
      throw Error("tensor '" + tensor.name + "' is in both " + existing->second.file->path().string() +
                  " and " + path.string());
  }
  return file;
}

}  // namespace moeq::safetensors
