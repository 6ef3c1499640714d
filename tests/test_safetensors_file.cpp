// Reading and writing whole safetensors files: the round trip, the atomic
// output, and a clear error for truncated or lying files.
#include "safetensors/error.hpp"
#include "safetensors/file.hpp"
#include "safetensors/writer.hpp"
#include "support/error_message.hpp"
#include "support/scratch_folder.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <cstring>
#include <random>

using moeq::safetensors::Dtype;
using moeq::safetensors::Error;
using moeq::safetensors::File;
using moeq::safetensors::Writer;
using moeq_test::ScratchFolder;
using moeq_test::contains;

namespace {

std::string open_error(const std::filesystem::path& path) {
  return moeq_test::message_of<Error>([&] { File file(path); });
}

const std::string kOneTensorHeader = R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})";

}  // namespace

TEST_CASE(
    "a written file reads back with the same tensors, bytes and metadata, each aligned to its element size") {
  ScratchFolder folder;
  const std::vector<float> weights{1.0f, -2.0f, 3.5f};
  const std::vector<uint16_t> halves{7, 8};
  const std::vector<uint8_t> bytes{1, 2, 3};
  {
    Writer writer(folder / "a.safetensors",
                  {{"bytes", Dtype::U8, {3}}, {"halves", Dtype::BF16, {2}}, {"weights", Dtype::F32, {3, 1}}},
                  {{"format", "pt"}});
    writer.write("bytes", bytes.data(), 3);
    writer.write("weights", weights.data(), 12);
    writer.write("halves", halves.data(), 4);
    writer.commit();
  }
  const File file(folder / "a.safetensors");
  CHECK(file.header().metadata.at("format") == "pt");
  REQUIRE(file.tensors().size() == 3);
  const auto* read_weights = file.find("weights");
  REQUIRE(read_weights != nullptr);
  CHECK(read_weights->shape == std::vector<int64_t>{3, 1});
  CHECK(std::memcmp(file.data(*read_weights), weights.data(), 12) == 0);
  CHECK(std::memcmp(file.data(*file.find("halves")), halves.data(), 4) == 0);
  CHECK(std::memcmp(file.data(*file.find("bytes")), bytes.data(), 3) == 0);
  for (const auto& tensor : file.tensors())
    CHECK(reinterpret_cast<uintptr_t>(file.data(tensor)) % moeq::safetensors::dtype_bytes(tensor.dtype) == 0);
}

TEST_CASE("a writer that is not committed leaves no file at all") {
  ScratchFolder folder;
  {
    Writer writer(folder / "a.safetensors", {{"w", Dtype::U8, {2}}}, {});
    const uint8_t data[2] = {1, 2};
    writer.write("w", data, 2);
  }
  CHECK(moeq_test::files_in(folder.path()).empty());
}

TEST_CASE("commit refuses a file with a tensor never written, and the output does not appear") {
  ScratchFolder folder;
  {
    Writer writer(folder / "a.safetensors", {{"w", Dtype::U8, {2}}, {"x", Dtype::U8, {1}}}, {});
    const uint8_t data[2] = {1, 2};
    writer.write("w", data, 2);
    CHECK_THROWS_WITH_AS(writer.commit(), doctest::Contains("'x' was never written"), Error);
  }
  CHECK(moeq_test::files_in(folder.path()).empty());
}

TEST_CASE("the writer refuses wrong sizes, unknown names and second writes") {
  ScratchFolder folder;
  Writer writer(folder / "a.safetensors", {{"w", Dtype::F32, {2}}}, {});
  const float data[2] = {1, 2};
  CHECK_THROWS_WITH_AS(writer.write("w", data, 4), doctest::Contains("has 8 bytes in the header, got 4"),
                       Error);
  CHECK_THROWS_WITH_AS(writer.write("v", data, 8), doctest::Contains("not in the header"), Error);
  writer.write("w", data, 8);
  CHECK_THROWS_WITH_AS(writer.write("w", data, 8), doctest::Contains("written twice"), Error);
}

TEST_CASE("a committed file replaces its destination and leaves no temporary file beside it") {
  ScratchFolder folder;
  moeq_test::write_bytes(folder / "a.safetensors", "old contents");
  Writer writer(folder / "a.safetensors", {{"w", Dtype::U8, {1}}}, {});
  const uint8_t data = 9;
  writer.write("w", &data, 1);
  writer.commit();
  CHECK(moeq_test::files_in(folder.path()) == std::vector<std::string>{"a.safetensors"});
  CHECK(*File(folder / "a.safetensors").data(File(folder / "a.safetensors").tensors()[0]) == 9);
}

TEST_CASE("files shorter than the 8-byte header length are truncated files") {
  ScratchFolder folder;
  moeq_test::write_bytes(folder / "empty.safetensors", "");
  moeq_test::write_bytes(folder / "short.safetensors", std::string("\x10\x00\x00", 3));
  CHECK(contains(open_error(folder / "empty.safetensors"), "truncated: 0 bytes"));
  CHECK(contains(open_error(folder / "short.safetensors"), "truncated: 3 bytes"));
}

TEST_CASE("a header length past the end of the file is refused before anything is read") {
  ScratchFolder folder;
  moeq_test::write_bytes(folder / "a.safetensors",
                         moeq_test::safetensors_bytes(kOneTensorHeader, "abcd", 1000));
  moeq_test::write_bytes(folder / "b.safetensors", moeq_test::safetensors_bytes("", "", UINT64_MAX - 3));
  CHECK(contains(open_error(folder / "a.safetensors"), "header length 1000 runs past the end of the file"));
  CHECK(contains(open_error(folder / "b.safetensors"), "runs past the end of the file"));
}

TEST_CASE("a header longer than safetensors' 100 MB limit is refused") {
  ScratchFolder folder;
  const auto path = folder / "huge.safetensors";
  moeq_test::write_bytes(path, moeq_test::safetensors_bytes("", "", 100'000'001));
  std::filesystem::resize_file(path, 100'000'100);  // sparse: costs no disk
  CHECK(contains(open_error(path), "exceeds safetensors' limit"));
}

TEST_CASE("a file cut short inside its data is reported as truncated, naming the tensor") {
  ScratchFolder folder;
  moeq_test::write_bytes(folder / "a.safetensors", moeq_test::safetensors_bytes(kOneTensorHeader, "ab"));
  const std::string error = open_error(folder / "a.safetensors");
  CHECK(contains(error, "a.safetensors: tensor 'w'"));
  CHECK(contains(error, "the file is truncated"));
}

TEST_CASE("a missing file, a folder and an unreadable file give the reason") {
  ScratchFolder folder;
  CHECK(contains(open_error(folder / "missing.safetensors"), "No such file"));
  CHECK(contains(open_error(folder.path()), "not a regular file"));
  if (::geteuid() != 0) {  // root reads anything
    moeq_test::write_bytes(folder / "locked.safetensors",
                           moeq_test::safetensors_bytes(kOneTensorHeader, "abcd"));
    std::filesystem::permissions(folder / "locked.safetensors", std::filesystem::perms::none);
    CHECK(contains(open_error(folder / "locked.safetensors"), "Permission denied"));
  }
}

TEST_CASE("every truncation of a valid file is refused, and only the whole file opens") {
  ScratchFolder folder;
  {
    Writer writer(folder / "whole.safetensors", {{"a", Dtype::F32, {3}}, {"b", Dtype::BF16, {2, 2}}},
                  {{"k", "v"}});
    const uint8_t zeros[12] = {};
    writer.write("a", zeros, 12);
    writer.write("b", zeros, 8);
    writer.commit();
  }
  const std::string whole = moeq_test::read_bytes(folder / "whole.safetensors");
  for (size_t length = 0; length < whole.size(); ++length) {
    moeq_test::write_bytes(folder / "cut.safetensors", whole.substr(0, length));
    INFO("length ", length);
    CHECK_FALSE(open_error(folder / "cut.safetensors").empty());
  }
  CHECK(open_error(folder / "whole.safetensors").empty());
}

TEST_CASE("random corruptions of the header are either a valid file or a clear error, never a crash") {
  ScratchFolder folder;
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("b":{"dtype":"U8","shape":[4],"data_offsets":[16,20]}})";
  const std::string data(20, '\x01');
  const std::string alphabet = "0123456789[]{},:\"-.eE FUBI\xff\x00";
  std::mt19937 random(7);
  for (int trial = 0; trial < 500; ++trial) {
    std::string corrupted = header;
    for (int edit = 0; edit < 1 + trial % 3; ++edit)
      corrupted[random() % corrupted.size()] = alphabet[random() % alphabet.size()];
    moeq_test::write_bytes(folder / "c.safetensors", moeq_test::safetensors_bytes(corrupted, data));
    const std::string error = open_error(folder / "c.safetensors");
    if (error.empty()) {  // still consistent: every tensor lies inside the data
      const File file(folder / "c.safetensors");
      for (const auto& tensor : file.tensors()) CHECK(tensor.end <= data.size());
    }
  }
}
