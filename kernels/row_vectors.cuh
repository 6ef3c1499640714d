// Reads of 16-bit activation rows for the bandwidth-bound LoRA kernels: one
// 16-byte vector of eight elements per access.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace moeq::cuda {

// Elements [col, col + 8) of a 16-bit row as four 32-bit words (element col in the
// low half of word 0); zeros for an invalid row and past `width`. The row must be
// 16-byte aligned at whole vectors (RowsView::vector_aligned); only the last,
// partial vector of a row is read element by element. Streaming loads: each
// activation element is read once per kernel, so it should not evict the small
// factors and rank-r intermediates that every block re-reads from L2.
__device__ __forceinline__ uint4 load_row_vector(const uint16_t* row, bool row_valid, int64_t col,
                                                 int64_t width) {
  if (!row_valid || col >= width) return make_uint4(0u, 0u, 0u, 0u);
  if (col + 8 <= width) return __ldcs(reinterpret_cast<const uint4*>(row + col));
  uint32_t words[4] = {0u, 0u, 0u, 0u};
#pragma unroll
  for (int i = 0; i < 8; ++i)
    if (col + i < width) words[i / 2] |= static_cast<uint32_t>(__ldg(row + col + i)) << (16 * (i % 2));
  return make_uint4(words[0], words[1], words[2], words[3]);
}

}  // namespace moeq::cuda
