// Host memory for one quantized tensor at a time, reused from tensor to tensor.
#pragma once

#include "cli/qtensor_view.hpp"
#include "cli/quantizer.hpp"
#include "cli/scratch_buffer.hpp"

namespace moeq::cli {

class HostQTensorBuffers {
 public:
  // Buffers for `layout` (contents undefined), valid until the next prepare.
  QTensorBuffers prepare(const moeq_quant_layout& layout) {
    layout_ = layout;
    const bool nested = layout.nested_code_count > 0;
    return QTensorBuffers{packed_.get(layout.packed_bytes), absmax_.get(absmax_bytes(layout)),
                          nested ? nested_absmax_.get(nested_absmax_bytes(layout)) : nullptr,
                          nested ? nested_code_.get(nested_code_bytes(layout)) : nullptr,
                          nested ? &nested_offset_ : nullptr};
  }

  // What the last prepare's buffers hold, once filled.
  QuantizedBytes bytes() {
    const bool nested = layout_.nested_code_count > 0;
    return QuantizedBytes{layout_, packed_.get(0), absmax_.get(0), nested ? nested_absmax_.get(0) : nullptr,
                          nested ? nested_code_.get(0) : nullptr, nested_offset_};
  }

 private:
  moeq_quant_layout layout_{};
  ScratchBuffer packed_, absmax_, nested_absmax_, nested_code_;
  float nested_offset_ = 0.0f;
};

}  // namespace moeq::cli
