// Opening a safetensors file: the 8-byte header length, then the header, each
// checked against the file's real size before it is trusted.
#include "safetensors/file.hpp"

#include "safetensors/error.hpp"

#include <algorithm>

namespace moeq::safetensors {
namespace {

uint64_t read_little_endian_u64(const uint8_t* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

}  // namespace

File::File(std::filesystem::path path) : path_(std::move(path)), mapping_(path_) {
  const uint64_t size = mapping_.size();
  const std::string where = path_.string() + ": ";
  if (size < 8)
    throw Error(where + "truncated: " + std::to_string(size) +
                " bytes, but a safetensors file starts with an 8-byte header length");
  const uint64_t header_bytes = read_little_endian_u64(mapping_.data());
  if (header_bytes > size - 8)
    throw Error(where + "the header length " + std::to_string(header_bytes) +
                " runs past the end of the file (" + std::to_string(size) +
                " bytes): truncated, or not a safetensors file");
  if (header_bytes > kMaxHeaderBytes)
    throw Error(where + "the header length " + std::to_string(header_bytes) +
                " exceeds safetensors' limit of " + std::to_string(kMaxHeaderBytes) + " bytes");
  data_start_ = 8 + header_bytes;
  try {
    header_ = parse_header(std::string_view(reinterpret_cast<const char*>(mapping_.data()) + 8, header_bytes),
                           size - data_start_);
  } catch (const Error& error) {
    throw Error(where + error.what());
  }
}

const TensorInfo* File::find(std::string_view name) const {
  const auto found = std::find_if(header_.tensors.begin(), header_.tensors.end(),
                                  [&](const TensorInfo& tensor) { return tensor.name == name; });
  return found == header_.tensors.end() ? nullptr : &*found;
}

void File::read(const TensorInfo& tensor, uint64_t offset, uint64_t bytes, void* destination) const {
  if (offset > tensor.bytes() || bytes > tensor.bytes() - offset)
    throw Error(path_.string() + ": reading " + std::to_string(bytes) + " bytes at " +
                std::to_string(offset) + " of '" + tensor.name + "', which has " +
                std::to_string(tensor.bytes()));
  mapping_.read(data_start_ + tensor.begin + offset, bytes, destination);
}

}  // namespace moeq::safetensors
