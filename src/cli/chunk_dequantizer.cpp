// ChunkDequantizer: a moeq_qtensor over a slice of the stored buffers (block
// statistics copied out, since another writer may not have aligned them), then
// moeq_dequantize into float32.
#include "cli/chunk_dequantizer.hpp"

#include "cli/qtensor_view.hpp"
#include "cli/quantizer.hpp"

#include <algorithm>
#include <cstring>

namespace moeq::cli {
namespace {

// About 16 M elements (64 MB of float32) per chunk.
constexpr int64_t kChunkElements = int64_t{1} << 24;

}  // namespace

ChunkDequantizer::ChunkDequantizer(const QuantizedTensor& tensor)
    : tensor_(tensor),
      blocksize_(tensor.state.blocksize),
      block_count_(tensor.layout.absmax_count),
      blocks_per_chunk_(MOEQ_NESTED_BLOCKSIZE *
                        std::max<int64_t>(1, kChunkElements / (MOEQ_NESTED_BLOCKSIZE * blocksize_))) {
  if (tensor.state.nested) {
    const uint64_t bytes = nested_code_bytes(tensor.layout);
    std::memcpy(nested_code_.get(bytes), tensor.data(tensor.nested_quant_map), bytes);
  }
}

DequantizedChunk ChunkDequantizer::dequantize(int64_t first_block) {
  const QuantState& state = tensor_.state;
  const int64_t blocks = std::min(blocks_per_chunk_, block_count_ - first_block);
  const int64_t first_element = first_block * blocksize_;
  int64_t elements = std::min(blocks * blocksize_, tensor_.numel() - first_element);

  moeq_quant_config config = state.config();
  moeq_quant_layout layout{};
  layout.struct_size = sizeof(layout);
  check_status(moeq_quantized_layout(&config, 1, &elements, &layout), "'" + tensor_.base + "'");

  QTensorBuffers buffers;
  // Blocks hold an even number of elements, so a chunk starts on a whole byte.
  buffers.packed = const_cast<uint8_t*>(tensor_.data(tensor_.packed)) + first_element / 2;
  const uint64_t scale_bytes = absmax_bytes(layout);
  buffers.absmax = absmax_.get(scale_bytes);
  std::memcpy(buffers.absmax, tensor_.data(tensor_.absmax) + first_block * (scale_bytes / blocks),
              scale_bytes);
  float nested_offset = state.nested_offset;
  if (state.nested) {
    const uint64_t bytes = nested_absmax_bytes(layout);
    buffers.nested_absmax = nested_absmax_.get(bytes);
    std::memcpy(buffers.nested_absmax,
                tensor_.data(tensor_.nested_absmax) + first_block / MOEQ_NESTED_BLOCKSIZE * sizeof(float),
                bytes);
    buffers.nested_code = nested_code_.get(0);
    buffers.nested_offset = &nested_offset;
  }
  QTensorView view(layout, buffers, DLDevice{kDLCPU, 0});
  view.describe(state.format, state.blocksize, state.nested, 1, &elements,
                safetensors::to_dl_dtype(state.dtype));
  float* values = reinterpret_cast<float*>(values_.get(elements * sizeof(float)));
  DLTensor out{values, {kDLCPU, 0}, 1, DLDataType{kDLFloat, 32, 1}, &elements, nullptr, 0};
  check_status(moeq_dequantize(view.get(), &out, nullptr), "dequantize '" + tensor_.base + "'");

  // The scales as dequantization rebuilt them (FORMAT.md, double quantization).
  float* scales = reinterpret_cast<float*>(scales_.get(blocks * sizeof(float)));
  if (state.nested) {
    const auto* codes = static_cast<const uint8_t*>(buffers.absmax);
    const auto* nested_scales = static_cast<const float*>(buffers.nested_absmax);
    const auto* nested_code = static_cast<const float*>(buffers.nested_code);
    for (int64_t block = 0; block < blocks; ++block)
      scales[block] =
          nested_code[codes[block]] * nested_scales[block / MOEQ_NESTED_BLOCKSIZE] + nested_offset;
  } else {
    std::memcpy(scales, buffers.absmax, blocks * sizeof(float));
  }
  return DequantizedChunk{first_element, elements, values, scales};
}

}  // namespace moeq::cli
