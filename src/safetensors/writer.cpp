// Writer: the layout and header of a safetensors file, then positioned writes
// of each tensor into its PartialFile.
#include "safetensors/writer.hpp"

#include "safetensors/error.hpp"

#include <algorithm>

namespace moeq::safetensors {

Writer::Writer(std::filesystem::path path, std::vector<TensorSpec> tensors,
               std::map<std::string, std::string> metadata)
    : file_(std::move(path)) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorSpec& a, const TensorSpec& b) {
    return dtype_bytes(a.dtype) != dtype_bytes(b.dtype) ? dtype_bytes(a.dtype) > dtype_bytes(b.dtype)
                                                        : a.name < b.name;
  });
  header_.metadata = std::move(metadata);
  uint64_t offset = 0;
  for (TensorSpec& spec : tensors) {
    TensorInfo info;
    info.name = std::move(spec.name);
    info.dtype = spec.dtype;
    info.shape = std::move(spec.shape);
    for (int64_t size : info.shape) info.numel *= size;
    info.begin = offset;
    info.end = offset + static_cast<uint64_t>(info.numel * dtype_bytes(info.dtype));
    offset = info.end;
    if (!index_of_.emplace(info.name, header_.tensors.size()).second)
      throw Error(file_.destination().string() + ": tensor '" + info.name + "' would be written twice");
    header_.tensors.push_back(std::move(info));
  }
  written_.assign(header_.tensors.size(), false);

  const std::string header_text = serialize_header(header_);
  data_start_ = 8 + header_text.size();
  file_bytes_ = data_start_ + offset;
  file_.reserve(file_bytes_);
  uint8_t length[8];
  for (int i = 0; i < 8; ++i)
    length[i] = static_cast<uint8_t>(static_cast<uint64_t>(header_text.size()) >> (8 * i));
  file_.write_at(0, length, 8);
  file_.write_at(8, header_text.data(), header_text.size());
}

void Writer::write(const std::string& name, const void* data, uint64_t bytes) {
  const auto found = index_of_.find(name);
  if (found == index_of_.end()) throw Error(path().string() + ": tensor '" + name + "' is not in the header");
  const TensorInfo& tensor = header_.tensors[found->second];
  if (bytes != tensor.bytes())
    throw Error(path().string() + ": tensor '" + name + "' has " + std::to_string(tensor.bytes()) +
                " bytes in the header, got " + std::to_string(bytes));
  if (written_[found->second]) throw Error(path().string() + ": tensor '" + name + "' written twice");
  file_.write_at(data_start_ + tensor.begin, data, bytes);
  written_[found->second] = true;
}

void Writer::commit() {
  const auto missing = std::find(written_.begin(), written_.end(), false);
  if (missing != written_.end())
    throw Error(path().string() + ": tensor '" + header_.tensors[missing - written_.begin()].name +
                "' was never written");
  file_.commit();
}

}  // namespace moeq::safetensors
