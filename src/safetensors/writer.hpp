// A safetensors file written tensor by tensor, never held whole in memory, that
// appears under its name only once complete.
#pragma once

#include "safetensors/header.hpp"
#include "safetensors/partial_file.hpp"

#include <filesystem>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace moeq::safetensors {

struct TensorSpec {
  std::string name;
  Dtype dtype = Dtype::U8;
  std::vector<int64_t> shape;
};

class Writer {
 public:
  // Lays out every tensor (largest element size first, so each is aligned to its
  // own size), writes the header to a temporary file beside `path` and reserves
  // the file's whole size. Throws Error.
  Writer(std::filesystem::path path, std::vector<TensorSpec> tensors,
         std::map<std::string, std::string> metadata);

  // Writes the whole of one tensor; `bytes` must be its exact size. Any order.
  void write(const std::string& name, const void* data, uint64_t bytes);
  // Checks every tensor was written, then moves the file into place. Without a
  // commit the temporary file is removed when the Writer goes away.
  void commit();

  const std::filesystem::path& path() const { return file_.destination(); }
  uint64_t file_bytes() const { return file_bytes_; }
  const Header& header() const { return header_; }

 private:
  PartialFile file_;
  Header header_;
  std::unordered_map<std::string, size_t> index_of_;
  std::vector<bool> written_;
  uint64_t data_start_ = 0, file_bytes_ = 0;
};

}  // namespace moeq::safetensors
