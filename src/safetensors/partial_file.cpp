// PartialFile over open/fallocate/pwrite/fsync/rename.
#include "safetensors/partial_file.hpp"

#include "safetensors/error.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace moeq::safetensors {
namespace {

std::string with_errno(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

PartialFile::PartialFile(std::filesystem::path destination) : destination_(std::move(destination)) {
  temporary_ = destination_;
  temporary_ += ".moeq-partial-" + std::to_string(::getpid());
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(with_errno(temporary_.string() + ": cannot create"));
}

PartialFile::~PartialFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temporary_.c_str());
}

void PartialFile::reserve(uint64_t bytes) {
  // Filesystems without fallocate stay sparse; a full disk then shows at write time.
  if (bytes > 0 && ::fallocate(fd_, 0, 0, static_cast<off_t>(bytes)) != 0 && errno == ENOSPC)
    throw Error(with_errno(destination_.string() + ": cannot reserve " + std::to_string(bytes) + " bytes"));
}

void PartialFile::write_at(uint64_t offset, const void* data, uint64_t bytes) {
  const auto* cursor = static_cast<const uint8_t*>(data);
  const uint64_t first = offset, total = bytes;
  while (bytes > 0) {
    // pwrite moves at most ~2 GiB per call on Linux: loop over short writes.
    const ssize_t done = ::pwrite(fd_, cursor, bytes, static_cast<off_t>(offset));
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) throw Error(with_errno(temporary_.string() + ": write failed"));
    cursor += done;
    offset += static_cast<uint64_t>(done);
    bytes -= static_cast<uint64_t>(done);
  }
  ::sync_file_range(fd_, static_cast<off_t>(first), static_cast<off_t>(total),
                    SYNC_FILE_RANGE_WRITE);  // a hint
}

void PartialFile::commit() {
  if (::fsync(fd_) != 0) throw Error(with_errno(temporary_.string() + ": cannot flush"));
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) throw Error(with_errno(temporary_.string() + ": cannot close"));
  if (::rename(temporary_.c_str(), destination_.c_str()) != 0)
    throw Error(with_errno("cannot rename " + temporary_.string() + " to " + destination_.string()));
  committed_ = true;
}

void write_file_atomically(const std::filesystem::path& destination, const std::string& text) {
  PartialFile file(destination);
  file.write_at(0, text.data(), text.size());
  file.commit();
}

}  // namespace moeq::safetensors
