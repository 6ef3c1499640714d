// QTensorView: the DLTensor views of a quantized tensor's buffers.
#include "cli/qtensor_view.hpp"

namespace moeq::cli {
namespace {

DLTensor vector_view(void* data, int64_t* shape, DLDataType dtype, DLDevice device) {
  return DLTensor{data, device, 1, dtype, shape, nullptr, 0};
}

constexpr DLDataType kFloat32{kDLFloat, 32, 1};
constexpr DLDataType kUInt8{kDLUInt, 8, 1};

}  // namespace

uint64_t absmax_bytes(const moeq_quant_layout& layout) {
  return static_cast<uint64_t>(layout.absmax_count) * (layout.absmax_dtype.bits / 8);
}

QTensorView::QTensorView(const moeq_quant_layout& layout, const QTensorBuffers& buffers, DLDevice device)
    : packed_shape_(layout.packed_bytes),
      absmax_shape_(layout.absmax_count),
      nested_absmax_shape_(layout.nested_absmax_count),
      nested_code_shape_(layout.nested_code_count),
      nested_offset_shape_(layout.nested_offset_count) {
  tensor_.struct_size = sizeof(moeq_qtensor);
  tensor_.packed = vector_view(buffers.packed, &packed_shape_, kUInt8, device);
  tensor_.absmax = vector_view(buffers.absmax, &absmax_shape_, layout.absmax_dtype, device);
  tensor_.nested_absmax = vector_view(buffers.nested_absmax, &nested_absmax_shape_, kFloat32, device);
  tensor_.nested_code = vector_view(buffers.nested_code, &nested_code_shape_, kFloat32, device);
  tensor_.nested_offset = vector_view(buffers.nested_offset, &nested_offset_shape_, kFloat32, device);
}

void QTensorView::describe(int32_t format, int32_t blocksize, bool nested, int32_t ndim, const int64_t* shape,
                           DLDataType dtype) {
  tensor_.format = format;
  tensor_.blocksize = blocksize;
  tensor_.nested = nested ? 1 : 0;
  tensor_.ndim = ndim;
  for (int32_t i = 0; i < ndim && i < MOEQ_MAX_DIMS; ++i) tensor_.shape[i] = shape[i];
  tensor_.dtype = dtype;
}

}  // namespace moeq::cli
