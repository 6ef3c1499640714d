// One safetensors file opened for reading: its validated header over a memory mapping.
#pragma once

#include "safetensors/header.hpp"
#include "safetensors/mapped_file.hpp"

#include <filesystem>
#include <string_view>

namespace moeq::safetensors {

class File {
 public:
  // Throws Error, prefixed with the path, for anything that is not a complete,
  // consistent safetensors file.
  explicit File(std::filesystem::path path);

  const std::filesystem::path& path() const { return path_; }
  const Header& header() const { return header_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const TensorInfo* find(std::string_view name) const;  // NULL if absent
  uint64_t size_bytes() const { return mapping_.size(); }

  // The tensor's bytes, in place in the mapping (no alignment beyond 1 byte is
  // promised: another writer may not have aligned them).
  const uint8_t* data(const TensorInfo& tensor) const { return mapping_.data() + data_start_ + tensor.begin; }
  void will_need(const TensorInfo& tensor) const {
    mapping_.will_need(data_start_ + tensor.begin, tensor.bytes());
  }
  void done_with(const TensorInfo& tensor) const {
    mapping_.done_with(data_start_ + tensor.begin, tensor.bytes());
  }
  // Copies `bytes` of the tensor's bytes from `offset` on (both within the tensor)
  // into `destination`, without touching the mapping. Thread-safe. Throws Error.
  void read(const TensorInfo& tensor, uint64_t offset, uint64_t bytes, void* destination) const;

 private:
  std::filesystem::path path_;
  MappedFile mapping_;
  uint64_t data_start_ = 0;
  Header header_;
};

}  // namespace moeq::safetensors
