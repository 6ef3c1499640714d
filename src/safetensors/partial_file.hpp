// An output file created under a temporary name beside its destination: renamed
// into place by commit(), deleted if anything fails before, so a reader never
// sees a partial file under the final name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace moeq::safetensors {

class PartialFile {
 public:
  explicit PartialFile(std::filesystem::path destination);  // throws Error
  ~PartialFile();
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  // Allocates the file's blocks now, so a full disk is reported before the work.
  void reserve(uint64_t bytes);
  // Writes `bytes` at `offset` and starts their writeback to disk at once, so
  // the disk works while the next tensor is computed instead of all at commit.
  void write_at(uint64_t offset, const void* data, uint64_t bytes);
  // fsync, close, rename over the destination.
  void commit();

  const std::filesystem::path& destination() const { return destination_; }

 private:
  std::filesystem::path destination_, temporary_;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes `text` as the whole of `destination` through a PartialFile. Throws Error.
void write_file_atomically(const std::filesystem::path& destination, const std::string& text);

}  // namespace moeq::safetensors
