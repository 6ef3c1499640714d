// Tensor descriptors the C API fuzzer builds, mutates and then backs with real
// memory sized exactly to what each descriptor claims, so that any access the
// library makes outside a claim is caught by AddressSanitizer.
#pragma once

#include "fuzz_input.hpp"

#include <dlpack/dlpack.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

namespace moeq_fuzz {

// What a DLTensor claims, before memory is attached.
struct TensorSpec {
  bool present = true;  // false: the argument (or qtensor buffer) is left empty / NULL
  DLDataType dtype{kDLFloat, 32, 1};
  std::vector<int64_t> shape;  // ndim entries (ndim < 0: none)
  int32_t ndim = 0;
  bool shape_null = false;
  std::optional<std::vector<int64_t>> strides;  // nullopt: compact (NULL)
  uint64_t byte_offset = 0;
  DLDevice device{kDLCPU, 0};
  uint32_t misalign = 0;  // bytes the first element sits past its natural alignment
  bool data_null = false;
  int alias_of = -1;              // share the memory of this tensor (index in the call)
  std::vector<int64_t> contents;  // int32/int64 tensors: the values, in flat order

  TensorSpec() = default;
  TensorSpec(DLDataType dtype, std::vector<int64_t> sizes)
      : dtype(dtype), shape(std::move(sizes)), ndim(static_cast<int32_t>(shape.size())) {}
};

DLDataType float32();
DLDataType float16();
DLDataType bfloat16();
DLDataType uint8();
DLDataType int32();
DLDataType int64();

// Changes one property of `spec`, chosen by the input.
void mutate(TensorSpec& spec, FuzzInput& input, int tensor_count);

// Memory and DLTensors for one call; everything lives until the arena dies.
class Arena {
 public:
  explicit Arena(uint64_t seed) : seed_(seed) {}
  // The DLTensor for specs[i] (NULL when absent); `specs` may alias each other.
  std::vector<DLTensor*> materialize(const std::vector<TensorSpec>& specs);
  // A host buffer of `bytes` (at least 1), filled with pseudo-random bytes.
  uint8_t* buffer(uint64_t bytes);
  template <class T>
  T* copy(const T& value, uint64_t bytes = sizeof(T)) {
    auto* place = buffer(bytes);
    std::memcpy(place, &value, std::min<uint64_t>(bytes, sizeof(T)));
    return reinterpret_cast<T*>(place);
  }

 private:
  struct Claim {
    uint8_t* first = nullptr;  // the lowest byte the tensor spans
    uint64_t bytes = 0;
  };
  uint64_t seed_;
  std::vector<std::unique_ptr<uint8_t[]>> buffers_;
  std::deque<DLTensor> tensors_;
};

}  // namespace moeq_fuzz
