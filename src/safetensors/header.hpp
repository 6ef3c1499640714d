// The JSON header of a safetensors file: parsed, validated against the data
// section it describes, and written back.
#pragma once

#include "safetensors/dtype.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace moeq::safetensors {

// safetensors' own limit: a longer header is refused before it is parsed.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::U8;
  std::vector<int64_t> shape;
  int64_t numel = 1;
  uint64_t begin = 0;  // byte offsets within the data section
  uint64_t end = 0;
  uint64_t bytes() const { return end - begin; }
};

struct Header {
  std::map<std::string, std::string> metadata;  // "__metadata__"
  std::vector<TensorInfo> tensors;              // in data-offset order
};

// Parses `text` and checks it describes exactly `data_bytes` bytes: every tensor
// has a known dtype, a shape whose byte size fits in 64 bits and matches its
// data_offsets, and the tensors tile the data section with no overlap and no
// hole (as safetensors itself requires). Throws Error naming the tensor.
Header parse_header(std::string_view text, uint64_t data_bytes);

// The header bytes of a file holding `header`: JSON padded with spaces so the
// data section starts 8-byte aligned. Offsets must already be assigned.
std::string serialize_header(const Header& header);

// "[64, 3072, 2048]" for messages and listings.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace moeq::safetensors
