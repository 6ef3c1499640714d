// A moeq_qtensor over five caller-owned buffers sized by a moeq_quant_layout:
// the one place the C API's quantized-tensor struct is filled in.
#pragma once

#include <moeq/moeq.h>

#include <cstdint>

namespace moeq::cli {

struct QTensorBuffers {
  void* packed = nullptr;
  void* absmax = nullptr;
  void* nested_absmax = nullptr;  // the nested ones only when layout.absmax is uint8
  void* nested_code = nullptr;
  void* nested_offset = nullptr;
};

// Owns the 1-D shapes the DLTensors point at, so it must outlive the moeq call.
class QTensorView {
 public:
  QTensorView(const moeq_quant_layout& layout, const QTensorBuffers& buffers, DLDevice device);
  QTensorView(const QTensorView&) = delete;
  QTensorView& operator=(const QTensorView&) = delete;

  // What moeq_dequantize reads and moeq_quantize fills in itself.
  void describe(int32_t format, int32_t blocksize, bool nested, int32_t ndim, const int64_t* shape,
                DLDataType dtype);
  moeq_qtensor* get() { return &tensor_; }

 private:
  int64_t packed_shape_, absmax_shape_, nested_absmax_shape_, nested_code_shape_, nested_offset_shape_;
  moeq_qtensor tensor_{};
};

// Byte sizes of the buffers of a layout.
uint64_t absmax_bytes(const moeq_quant_layout& layout);
inline uint64_t nested_absmax_bytes(const moeq_quant_layout& layout) {
  return 4 * layout.nested_absmax_count;
}
inline uint64_t nested_code_bytes(const moeq_quant_layout& layout) { return 4 * layout.nested_code_count; }

}  // namespace moeq::cli
