// read_in_parallel: positioned reads of fixed-size pieces, handed out dynamically.
#include "cli/parallel_read.hpp"

#include <algorithm>
#include <exception>
#include <mutex>

namespace moeq::cli {
namespace {

// Small enough that 16 threads share a 64 MiB chunk evenly, large enough that the
// per-call cost of pread stays negligible.
constexpr uint64_t kPieceBytes = uint64_t{2} << 20;

}  // namespace

void read_in_parallel(const safetensors::File& source, const safetensors::TensorInfo& tensor, uint64_t offset,
                      uint64_t bytes, uint8_t* destination) {
  const int64_t pieces = static_cast<int64_t>((bytes + kPieceBytes - 1) / kPieceBytes);
  std::exception_ptr failure;
  std::mutex failure_mutex;
#pragma omp parallel for schedule(dynamic)
  for (int64_t piece = 0; piece < pieces; ++piece) {
    const uint64_t begin = static_cast<uint64_t>(piece) * kPieceBytes;
    try {
      source.read(tensor, offset + begin, std::min(kPieceBytes, bytes - begin), destination + begin);
    } catch (...) {  // an exception must not leave an OpenMP region
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace moeq::cli
