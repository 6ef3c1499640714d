// The safetensors header parser: what a valid header yields, and a clear error
// for everything a hostile header could lie about.
#include "safetensors/error.hpp"
#include "safetensors/header.hpp"
#include "support/error_message.hpp"

#include <doctest/doctest.h>

#include <string>

using moeq::safetensors::Dtype;
using moeq::safetensors::Error;
using moeq::safetensors::parse_header;
using moeq_test::contains;

namespace {

// The message parse_header throws for `header` over `data_bytes` bytes ("" if none).
std::string error_of(const std::string& header, uint64_t data_bytes) {
  return moeq_test::message_of<Error>([&] { parse_header(header, data_bytes); });
}

}  // namespace

TEST_CASE("a valid header gives every tensor in data-offset order with its metadata") {
  const auto header = parse_header(
      R"({"b": {"dtype": "F32", "shape": [2, 3], "data_offsets": [4, 28]},
          "a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
          "__metadata__": {"format": "pt"}})",
      28);
  REQUIRE(header.tensors.size() == 2);
  CHECK(header.tensors[0].name == "a");
  CHECK(header.tensors[0].dtype == Dtype::BF16);
  CHECK(header.tensors[1].name == "b");
  CHECK(header.tensors[1].shape == std::vector<int64_t>{2, 3});
  CHECK(header.tensors[1].numel == 6);
  CHECK(header.tensors[1].begin == 4);
  CHECK(header.tensors[1].end == 28);
  CHECK(header.metadata.at("format") == "pt");
}

TEST_CASE("scalars, empty tensors and a file with no tensors are valid") {
  CHECK(parse_header(R"({"s": {"dtype": "F64", "shape": [], "data_offsets": [0, 8]}})", 8).tensors[0].numel ==
        1);
  CHECK(parse_header(R"({"e": {"dtype": "F16", "shape": [0, 5], "data_offsets": [0, 0]}})", 0)
            .tensors[0]
            .numel == 0);
  CHECK(parse_header("{}", 0).tensors.empty());
}

TEST_CASE("an unknown dtype string is refused by name") {
  const std::string error = error_of(R"({"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}})", 1);
  CHECK(contains(error, "tensor 'w'"));
  CHECK(contains(error, "unknown or unsupported dtype \"Q7\""));
}

TEST_CASE("sub-byte dtypes, which have no byte address, are refused") {
  CHECK(contains(error_of(R"({"w": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}})", 1),
                 "dtype \"F4\""));
}

TEST_CASE("a shape whose byte size overflows 64 bits is refused, not wrapped around") {
  const std::string error = error_of(
      R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 0);
  CHECK(contains(error, "more bytes than fit in 64 bits"));
  CHECK(contains(
      error_of(R"({"w": {"dtype": "BF16", "shape": [4611686018427387904, 2], "data_offsets": [0, 0]}})", 0),
      "64 bits"));
  CHECK(contains(
      error_of(R"({"w": {"dtype": "U8", "shape": [18446744073709551615], "data_offsets": [0, 0]}})", 0),
      "64 bits"));
}

TEST_CASE("data_offsets must hold exactly the bytes the dtype and shape need") {
  const std::string error = error_of(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8);
  CHECK(contains(error, "hold 8 bytes, but F32 [3] needs 12"));
}

TEST_CASE("offsets past the end of the data section are refused as truncation") {
  const std::string error = error_of(R"({"w": {"dtype": "U8", "shape": [16], "data_offsets": [0, 16]}})", 10);
  CHECK(contains(error, "run past the end of the data section (10 bytes)"));
}

TEST_CASE("offsets that end before they begin are refused") {
  CHECK(
      contains(error_of(R"({"w": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}})", 4), "end before"));
}

TEST_CASE("overlapping tensors are refused, naming both") {
  const std::string error = error_of(R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
                                         "b": {"dtype": "U8", "shape": [8], "data_offsets": [4, 12]}})",
                                     12);
  CHECK(contains(error, "tensor 'b' overlaps tensor 'a'"));
}

TEST_CASE("a hole between tensors or unclaimed trailing bytes are refused, as safetensors does") {
  CHECK(contains(error_of(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                              "b": {"dtype": "U8", "shape": [4], "data_offsets": [8, 12]}})",
                          12),
                 "belong to no tensor"));
  CHECK(contains(error_of(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})", 6),
                 "end at byte 4"));
}

TEST_CASE("a tensor name given twice is refused instead of one silently winning") {
  CHECK(contains(error_of(R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                              "a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})",
                          2),
                 "names 'a' twice"));
}

TEST_CASE("malformed JSON and wrongly typed fields give a message, never a crash") {
  CHECK(contains(error_of("{\"a\": ", 0), "not valid JSON"));
  CHECK(contains(error_of("[1, 2]", 0), "must be a JSON object"));
  CHECK(contains(error_of(R"({"a": 5})", 0), "tensor 'a': expected an object"));
  CHECK(contains(error_of(R"({"a": {"dtype": "U8", "shape": [1]}})", 1), "missing \"data_offsets\""));
  CHECK(contains(error_of(R"({"a": {"dtype": 8, "shape": [1], "data_offsets": [0, 1]}})", 1),
                 "must be a string"));
  CHECK(contains(error_of(R"({"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 1]}})", 1),
                 "non-negative"));
  CHECK(contains(error_of(R"({"a": {"dtype": "U8", "shape": [1.5], "data_offsets": [0, 1]}})", 1),
                 "non-negative"));
  CHECK(contains(error_of(R"({"a": {"dtype": "U8", "shape": 1, "data_offsets": [0, 1]}})", 1),
                 "must be an array"));
  CHECK(
      contains(error_of(R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0]}})", 1), "[begin, end]"));
  CHECK(contains(error_of(R"({"__metadata__": {"format": 1}})", 0), "expected a string"));
  CHECK(contains(error_of(std::string(100000, '['), 0), "not valid JSON"));
  CHECK(contains(error_of(std::string(100000, '[') + std::string(100000, ']'), 0), "must be a JSON object"));
  CHECK(contains(error_of("{\"a\xff\": 1}", 0), "not valid JSON"));
}

TEST_CASE("a serialized header parses back to itself and keeps the data 8-byte aligned") {
  moeq::safetensors::Header header;
  header.metadata["format"] = "pt";
  header.tensors.push_back({"w", Dtype::F16, {3}, 3, 0, 6});
  header.tensors.push_back({"x", Dtype::U8, {1}, 1, 6, 7});
  const std::string text = moeq::safetensors::serialize_header(header);
  CHECK(text.size() % 8 == 0);
  const auto parsed = parse_header(text, 7);
  REQUIRE(parsed.tensors.size() == 2);
  CHECK(parsed.tensors[0].name == "w");
  CHECK(parsed.tensors[0].dtype == Dtype::F16);
  CHECK(parsed.tensors[1].begin == 6);
  CHECK(parsed.metadata == header.metadata);
}
