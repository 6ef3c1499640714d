// A read-only memory mapping of a whole file, so tensors are read in place and
// the page cache, not the process, holds the bytes of checkpoints larger than RAM;
// and positioned reads of the same file, for copies into buffers of the caller's.
#pragma once

#include <cstdint>
#include <filesystem>

namespace moeq::safetensors {

class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);  // throws Error
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

  // Hints for a range about to be read once from start to end, and for a range
  // read for the last time: keeps the resident set near one tensor.
  void will_need(uint64_t offset, uint64_t bytes) const;
  void done_with(uint64_t offset, uint64_t bytes) const;

  // Copies bytes [offset, offset + bytes) into `destination` with pread: no page
  // of the mapping is touched, so many threads can copy one file without taking
  // page faults. Any number of threads at once. Throws Error.
  void read(uint64_t offset, uint64_t bytes, void* destination) const;

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace moeq::safetensors
