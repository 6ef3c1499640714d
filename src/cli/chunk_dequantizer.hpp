// Dequantizes a stored 4-bit tensor a run of blocks at a time, so checking a
// tensor of many GB needs only a fixed float32 buffer.
#pragma once

#include "cli/quantized_tensors.hpp"
#include "cli/scratch_buffer.hpp"

#include <cstdint>

namespace moeq::cli {

struct DequantizedChunk {
  int64_t first_element = 0;
  int64_t element_count = 0;
  const float* values = nullptr;        // element_count float32 values
  const float* block_scales = nullptr;  // the absmax each block was restored with
};

class ChunkDequantizer {
 public:
  explicit ChunkDequantizer(const QuantizedTensor& tensor);

  int64_t block_count() const { return block_count_; }
  // A multiple of the 256 blocks that share one nested scale.
  int64_t blocks_per_chunk() const { return blocks_per_chunk_; }
  // Blocks [first_block, first_block + blocks_per_chunk()) cut at the end of the
  // tensor; first_block must be a multiple of blocks_per_chunk(). Views are
  // valid until the next call.
  DequantizedChunk dequantize(int64_t first_block);

 private:
  const QuantizedTensor& tensor_;
  int64_t blocksize_, block_count_, blocks_per_chunk_;
  ScratchBuffer values_, scales_, absmax_, nested_absmax_, nested_code_;
};

}  // namespace moeq::cli
