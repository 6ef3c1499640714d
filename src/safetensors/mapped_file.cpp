// mmap/madvise/pread behind MappedFile.
#include "safetensors/mapped_file.hpp"

#include "safetensors/error.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace moeq::safetensors {
namespace {

// madvise wants page-aligned starts; widen the range to whole pages.
void advise(const uint8_t* base, uint64_t size, uint64_t offset, uint64_t bytes, int advice) {
  if (base == nullptr || bytes == 0 || offset >= size) return;
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t first = offset / page * page;
  const uint64_t last = std::min(size, offset + bytes);
  madvise(const_cast<uint8_t*>(base) + first, last - first, advice);  // a hint: failure is harmless
}

}  // namespace

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(path.string() + ": cannot open: " + std::strerror(errno));
  struct stat status{};
  if (::fstat(fd_, &status) != 0) {
    const int saved = errno;
    ::close(fd_);
    throw Error(path.string() + ": cannot stat: " + std::strerror(saved));
  }
  if (!S_ISREG(status.st_mode)) {
    ::close(fd_);
    throw Error(path.string() + ": not a regular file");
  }
  size_ = static_cast<uint64_t>(status.st_size);
  if (size_ > 0) {
    void* mapping = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (mapping == MAP_FAILED) {
      const int saved = errno;
      ::close(fd_);
      throw Error(path.string() + ": cannot map " + std::to_string(size_) +
                  " bytes: " + std::strerror(saved));
    }
    data_ = static_cast<const uint8_t*>(mapping);
  }
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  ::close(fd_);
}

void MappedFile::will_need(uint64_t offset, uint64_t bytes) const {
  advise(data_, size_, offset, bytes, MADV_WILLNEED);
}

void MappedFile::done_with(uint64_t offset, uint64_t bytes) const {
  advise(data_, size_, offset, bytes, MADV_DONTNEED);
}

void MappedFile::read(uint64_t offset, uint64_t bytes, void* destination) const {
  if (offset > size_ || bytes > size_ - offset)
    throw Error(path_.string() + ": reading " + std::to_string(bytes) + " bytes at " +
                std::to_string(offset) + " runs past the end (" + std::to_string(size_) + " bytes)");
  auto* cursor = static_cast<uint8_t*>(destination);
  while (bytes > 0) {
    // pread moves at most ~2 GiB per call on Linux: loop over short reads.
    const ssize_t done = ::pread(fd_, cursor, bytes, static_cast<off_t>(offset));
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) throw Error(path_.string() + ": read failed: " + std::strerror(errno));
    if (done == 0) throw Error(path_.string() + ": the file shrank while it was read");
    cursor += done;
    offset += static_cast<uint64_t>(done);
    bytes -= static_cast<uint64_t>(done);
  }
}

}  // namespace moeq::safetensors
