// libFuzzer target: arbitrary bytes as a safetensors file (and as a sharded
// index) given to the moeq command's reader, then everything `moeq verify` and
// `moeq inspect` read from it: every tensor's bytes, the bitsandbytes 4-bit
// tensors found by their quant_state, and their dequantization. A malformed file
// must give a safetensors::Error and nothing else; ASan and UBSan watch.
#include "cli/chunk_dequantizer.hpp"
#include "cli/quantized_tensors.hpp"
#include "safetensors/checkpoint.hpp"
#include "safetensors/error.hpp"
#include "safetensors/sharded_index.hpp"

#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace {

namespace fs = std::filesystem;

// Past this many elements a 4-bit tensor is not dequantized (it is still checked).
constexpr int64_t kMaxDequantizedElements = int64_t{1} << 16;

volatile uint64_t sink;

// The input as a file in memory (no disk: a fuzzer writes it thousands of times a
// second), named by its /proc/self/fd path.
fs::path memory_file(const char* name, const uint8_t* data, size_t size) {
  const int fd = ::memfd_create(name, 0);
  if (fd < 0 || ::write(fd, data, size) != static_cast<ssize_t>(size)) std::abort();
  return "/proc/self/fd/" + std::to_string(fd);
}

void close_memory_file(const fs::path& path) { ::close(std::stoi(path.filename().string())); }

void read_checkpoint(const fs::path& path) {
  const moeq::safetensors::Checkpoint checkpoint({path});
  uint64_t checksum = 0;
  for (const auto& file : checkpoint.files())
    for (const auto& tensor : file->tensors()) {
      const uint8_t* bytes = file->data(tensor);
      for (uint64_t i = 0; i < tensor.bytes(); ++i) checksum += bytes[i];
    }
  const moeq::cli::QuantizedTensors quantized = moeq::cli::find_quantized_tensors(checkpoint);
  for (const moeq::cli::QuantizedTensor& tensor : quantized.tensors) {
    if (tensor.numel() > kMaxDequantizedElements) continue;
    moeq::cli::ChunkDequantizer dequantizer(tensor);
    for (int64_t block = 0; block < dequantizer.block_count();
         block += dequantizer.blocks_per_chunk()) {
      const moeq::cli::DequantizedChunk chunk = dequantizer.dequantize(block);
      for (int64_t i = 0; i < chunk.element_count; ++i)
        checksum += chunk.values[i] == chunk.values[i];
    }
  }
  sink = checksum;  // keeps the reads from being optimized away
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  omp_set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path file = memory_file("model.safetensors", data, size);
  try {
    read_checkpoint(file);
  } catch (const moeq::safetensors::Error&) {}
  close_memory_file(file);
  if (size > 0 && data[0] == '{') {
    const fs::path index = memory_file("model.safetensors.index.json", data, size);
    try {
      moeq::safetensors::read_sharded_index(index);
    } catch (const moeq::safetensors::Error&) {}
    close_memory_file(index);
  }
  return 0;
}
