// Sharded checkpoints: the index, its shards, folders, and a clear error for
// every way they can disagree.
#include "safetensors/checkpoint.hpp"
#include "safetensors/error.hpp"
#include "support/error_message.hpp"
#include "support/scratch_folder.hpp"

#include <doctest/doctest.h>

using moeq::safetensors::Checkpoint;
using moeq::safetensors::Error;
using moeq_test::ScratchFolder;
using moeq_test::contains;
using moeq_test::safetensors_bytes;
using moeq_test::write_bytes;

namespace {

// A one-byte U8 tensor per name.
std::string file_with(const std::vector<std::string>& names) {
  std::string header = "{";
  for (size_t i = 0; i < names.size(); ++i)
    header += (i ? "," : "") + ("\"" + names[i] + "\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[" +
                                std::to_string(i) + "," + std::to_string(i + 1) + "]}");
  return safetensors_bytes(header + "}", std::string(names.size(), 'x'));
}

std::string open_error(const std::vector<std::filesystem::path>& inputs) {
  return moeq_test::message_of<Error>([&] { Checkpoint checkpoint(inputs); });
}

void write_two_shards(const ScratchFolder& folder) {
  write_bytes(folder / "model-00001-of-00002.safetensors", file_with({"a", "b"}));
  write_bytes(folder / "model-00002-of-00002.safetensors", file_with({"c"}));
}

}  // namespace

TEST_CASE("an index opens every shard it names, and a folder is read through its index") {
  ScratchFolder folder;
  write_two_shards(folder);
  write_bytes(folder / "model.safetensors.index.json",
              R"({"metadata": {"total_size": 3}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                  "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})");
  for (const auto& input : {folder / "model.safetensors.index.json", folder.path()}) {
    const Checkpoint checkpoint({input});
    CHECK(checkpoint.files().size() == 2);
    CHECK(checkpoint.tensor_count() == 3);
    CHECK(checkpoint.is_sharded());
    REQUIRE(checkpoint.find("c") != nullptr);
    CHECK(checkpoint.find("c")->file->path().filename() == "model-00002-of-00002.safetensors");
    CHECK(checkpoint.find("z") == nullptr);
  }
}

TEST_CASE("a folder without an index is every *.safetensors file in it") {
  ScratchFolder folder;
  write_two_shards(folder);
  write_bytes(folder / "notes.txt", "not a tensor file");
  const Checkpoint checkpoint({folder.path()});
  CHECK(checkpoint.files().size() == 2);
  CHECK(checkpoint.tensor_count() == 3);
}

TEST_CASE("one file is a checkpoint that is not sharded") {
  ScratchFolder folder;
  write_bytes(folder / "model.safetensors", file_with({"a"}));
  const Checkpoint checkpoint({folder / "model.safetensors"});
  CHECK_FALSE(checkpoint.is_sharded());
}

TEST_CASE("a shard the index names but the folder lacks is reported by name") {
  ScratchFolder folder;
  write_bytes(folder / "model-00001-of-00002.safetensors", file_with({"a", "b"}));
  write_bytes(
      folder / "model.safetensors.index.json",
      R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})");
  const std::string error = open_error({folder.path()});
  CHECK(contains(error, "shard 'model-00002-of-00002.safetensors' is missing"));
}

TEST_CASE("an index entry its shard does not hold is refused") {
  ScratchFolder folder;
  write_two_shards(folder);
  write_bytes(
      folder / "model.safetensors.index.json",
      R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}})");
  CHECK(contains(open_error({folder.path()}),
                 "puts 'c' in model-00001-of-00002.safetensors, which does not hold it"));
}

TEST_CASE("an index may not point outside its own folder") {
  ScratchFolder folder;
  write_bytes(folder / "model.safetensors.index.json",
              R"({"weight_map": {"a": "../elsewhere.safetensors"}})");
  CHECK(contains(open_error({folder.path()}), "shard names must be file names in the index's folder"));
  write_bytes(folder / "model.safetensors.index.json", R"({"weight_map": {"a": "/etc/passwd"}})");
  CHECK(contains(open_error({folder.path()}), "shard names must be file names"));
}

TEST_CASE("a malformed index is refused with the reason") {
  ScratchFolder folder;
  write_bytes(folder / "model.safetensors.index.json", "{not json");
  CHECK(contains(open_error({folder.path()}), "not valid JSON"));
  write_bytes(folder / "model.safetensors.index.json", R"({"metadata": {}})");
  CHECK(contains(open_error({folder.path()}), "\"weight_map\""));
  write_bytes(folder / "model.safetensors.index.json", R"({"weight_map": {"a": 3}})");
  CHECK(contains(open_error({folder.path()}), "expected a file name"));
  write_bytes(folder / "model.safetensors.index.json", R"({"weight_map": {}})");
  CHECK(contains(open_error({folder.path()}), "weight_map is empty"));
}

TEST_CASE("a tensor found in two files is refused") {
  ScratchFolder folder;
  write_bytes(folder / "a.safetensors", file_with({"x", "y"}));
  write_bytes(folder / "b.safetensors", file_with({"y"}));
  CHECK(contains(open_error({folder.path()}), "tensor 'y' is in both"));
}

TEST_CASE("missing inputs and folders without safetensors files are reported") {
  ScratchFolder folder;
  CHECK(contains(open_error({folder / "nothing"}), "no such file or folder"));
  CHECK(contains(open_error({folder.path()}), "no *.safetensors files and no index"));
  CHECK(contains(open_error({}), "no input checkpoint"));
}

TEST_CASE("a malformed shard is reported with its path") {
  ScratchFolder folder;
  write_bytes(folder / "model-00001-of-00002.safetensors", file_with({"a"}));
  write_bytes(folder / "model-00002-of-00002.safetensors", "\x01");
  const std::string error = open_error({folder.path()});
  CHECK(contains(error, "model-00002-of-00002.safetensors: truncated"));
}
