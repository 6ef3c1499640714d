// Copying part of a tensor out of its file with every core.
#pragma once

#include "safetensors/file.hpp"

#include <cstdint>

namespace moeq::cli {

// Copies bytes [offset, offset + bytes) of `tensor` into `destination`, split
// over the OpenMP threads: one core copies from the page cache at a few GB/s,
// far below what a GPU's copy engine takes. Throws safetensors::Error.
void read_in_parallel(const safetensors::File& source, const safetensors::TensorInfo& tensor, uint64_t offset,
                      uint64_t bytes, uint8_t* destination);

}  // namespace moeq::cli
