// Host memory for one quantized tensor at a time, reused from tensor to tensor;
// `Buffer` is a grow-only allocation (ScratchBuffer, or pinned memory for GPU copies).
#pragma once

#include "cli/qtensor_view.hpp"
#include "cli/quantizer.hpp"

#include <cstring>

namespace moeq::cli {

template <class Buffer>
class HostQTensorBuffers {
 public:
  // Buffers for `layout` (contents undefined), valid until the next prepare.
  QTensorBuffers prepare(const moeq_quant_layout& layout) {
    layout_ = layout;
    const bool nested = layout.nested_code_count > 0;
    return QTensorBuffers{packed_.get(layout.packed_bytes), absmax_.get(absmax_bytes(layout)),
                          nested ? nested_absmax_.get(nested_absmax_bytes(layout)) : nullptr,
                          nested ? nested_code_.get(nested_code_bytes(layout)) : nullptr,
                          nested ? nested_offset_.get(sizeof(float)) : nullptr};
  }

  // What the last prepare's buffers hold, once filled.
  QuantizedBytes bytes() {
    const bool nested = layout_.nested_code_count > 0;
    float nested_offset = 0.0f;
    if (nested) std::memcpy(&nested_offset, nested_offset_.get(sizeof(float)), sizeof(float));
    return QuantizedBytes{layout_,
                          packed_.get(0),
                          absmax_.get(0),
                          nested ? nested_absmax_.get(0) : nullptr,
                          nested ? nested_code_.get(0) : nullptr,
                          nested_offset};
  }

 private:
  moeq_quant_layout layout_{};
  Buffer packed_, absmax_, nested_absmax_, nested_code_, nested_offset_;
};

}  // namespace moeq::cli
