// Reading and writing the sharded-checkpoint index of Hugging Face checkpoints.
#include "safetensors/sharded_index.hpp"

#include "safetensors/error.hpp"
#include "safetensors/partial_file.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace moeq::safetensors {
namespace {

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.find('\0') == std::string::npos;
}

}  // namespace

ShardedIndex read_sharded_index(const std::filesystem::path& path) {
  const std::string where = path.string() + ": ";
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw Error(where + "cannot open the index");
  std::ostringstream text;
  text << stream.rdbuf();
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& error) {
    throw Error(where + "not valid JSON: " + error.what());
  }
  if (!document.is_object() || !document.contains("weight_map") || !document["weight_map"].is_object())
    throw Error(where +
                "expected an object with a \"weight_map\" object, as model.safetensors.index.json has");

  ShardedIndex index;
  index.path = path;
  for (const auto& [tensor, shard] : document["weight_map"].items()) {
    if (!shard.is_string())
      throw Error(where + "weight_map['" + tensor + "']: expected a file name, got " + shard.dump());
    const std::string name = shard.get<std::string>();
    if (!is_plain_file_name(name))
      throw Error(where + "weight_map['" + tensor + "'] = '" + name +
                  "': shard names must be file names in the index's folder");
    index.weight_map[tensor] = name;
    index.shard_names.push_back(name);
  }
  if (index.weight_map.empty()) throw Error(where + "the weight_map is empty");
  std::sort(index.shard_names.begin(), index.shard_names.end());
  index.shard_names.erase(std::unique(index.shard_names.begin(), index.shard_names.end()),
                          index.shard_names.end());
  return index;
}

void write_sharded_index(const std::filesystem::path& path,
                         const std::map<std::string, std::string>& weight_map, uint64_t total_size) {
  nlohmann::ordered_json document;
  document["metadata"] = {{"total_size", total_size}};
  document["weight_map"] = weight_map;
  write_file_atomically(path, document.dump(2) + "\n");
}

}  // namespace moeq::safetensors
