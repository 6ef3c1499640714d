// The quantized tensors of the C API fuzzer: a valid moeq_qtensor's five buffers
// as tensor specs, its descriptor fields, and mutations of both.
#pragma once

#include "fuzz_tensor.hpp"

#include <moeq/moeq.h>

#include <vector>

namespace moeq_fuzz {

// A struct_size: mostly right, sometimes too small (the library must stop reading
// at it) or larger than the library's struct. Chosen before the struct is known.
struct StructSize {
  uint32_t kind = 5;
  uint32_t raw = 0;
  uint32_t of(uint32_t size) const {
    const uint32_t sizes[] = {0, 4, size - 4, size + 64, raw, size};
    return sizes[kind % 6];
  }
};

inline StructSize struct_size(FuzzInput& input) {
  return StructSize{input.below(6), static_cast<uint32_t>(input.raw64())};
}

// A struct of `claimed` bytes: the library may read no further than struct_size
// (or its own sizeof when the caller's struct is larger).
template <class Struct>
Struct* place_struct(Arena& arena, const Struct& value) {
  const uint64_t claimed = value.struct_size;
  return arena.copy(value, std::max<uint64_t>(4, std::min<uint64_t>(claimed, sizeof(Struct))));
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A quantized tensor of logical `shape`: its descriptor and the specs of its
// buffers, consistent with each other until mutated.
struct QTensorSpec {
  moeq_qtensor descriptor{};
  std::vector<TensorSpec> buffers;  // packed, absmax, nested_absmax, nested_code, nested_offset

  QTensorSpec(int32_t format, int32_t blocksize, bool nested, const std::vector<int64_t>& shape,
              DLDataType dtype) {
    descriptor.struct_size = sizeof(moeq_qtensor);
    descriptor.format = format;
    descriptor.blocksize = blocksize;
    descriptor.nested = nested ? 1 : 0;
    descriptor.ndim = static_cast<int32_t>(shape.size());
    int64_t numel = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
      descriptor.shape[i] = shape[i];
      numel *= shape[i];
    }
    descriptor.dtype = dtype;
    const int64_t blocks = ceil_div(numel, blocksize);
    buffers.emplace_back(uint8(), std::vector<int64_t>{ceil_div(numel, 2)});
    buffers.emplace_back(nested ? uint8() : float32(), std::vector<int64_t>{blocks});
    buffers.emplace_back(float32(), std::vector<int64_t>{ceil_div(blocks, MOEQ_NESTED_BLOCKSIZE)});
    buffers.emplace_back(float32(), std::vector<int64_t>{MOEQ_NESTED_CODE_SIZE});
    buffers.emplace_back(float32(), std::vector<int64_t>{1});
    for (size_t i = 2; i < buffers.size(); ++i) buffers[i].present = nested;
  }

  // Changes one descriptor field.
  void mutate_descriptor(FuzzInput& input) {
    switch (input.below(7)) {
      case 0: descriptor.struct_size = struct_size(input).of(sizeof(moeq_qtensor)); break;
      case 1:
        descriptor.format = input.chance(2) ? static_cast<int32_t>(input.below(4))
                                            : static_cast<int32_t>(input.raw64());
        break;
      case 2:
        descriptor.blocksize =
            static_cast<int32_t>(input.chance(2) ? 16 << input.below(10) : input.size_value());
        break;
      case 3: descriptor.nested = static_cast<int32_t>(input.below(3)); break;
      case 4: descriptor.ndim = static_cast<int32_t>(input.below(12)) - 1; break;
      case 5: descriptor.shape[input.below(MOEQ_MAX_DIMS)] = input.size_value(); break;
      case 6:
        descriptor.dtype =
            DLDataType{input.byte(), input.byte(), static_cast<uint16_t>(input.below(3))};
        break;
    }
  }

  // The qtensor over materialized buffers (`tensors` from Arena::materialize of
  // `buffers`); absent buffers are zeroed views.
  moeq_qtensor assemble(const std::vector<DLTensor*>& tensors) const {
    moeq_qtensor q = descriptor;
    DLTensor* views[] = {&q.packed, &q.absmax, &q.nested_absmax, &q.nested_code, &q.nested_offset};
    for (size_t i = 0; i < 5; ++i) *views[i] = tensors[i] ? *tensors[i] : DLTensor{};
    return q;
  }
};

}  // namespace moeq_fuzz
