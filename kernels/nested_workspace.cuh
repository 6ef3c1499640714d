// The device scratch of nested quantization: the float32 absmax of every block
// (quantized afterwards), the kMeanLanes partial sums of their mean and the smallest
// non-zero absmax, both gathered by the quantize kernel. Its size is the one
// moeq_quantized_layout reports (src/api/qtensor_check.cpp).
#pragma once

#include "core/nested.hpp"

#include <cstddef>
#include <cstdint>

namespace moeq::cuda {

// The absmax array starts on a 32-byte sector so the mean's column reads are whole sectors.
constexpr uintptr_t kAbsmaxAlignment = 32;
// Room to align the arrays inside a caller's buffer of any alignment (absmax ends on
// 4 bytes), and for the smallest absmax behind the lane sums.
constexpr size_t kWorkspaceSlackBytes = 64;
static_assert((kAbsmaxAlignment - 1) + (alignof(double) - sizeof(float)) + sizeof(uint32_t) <=
                  kWorkspaceSlackBytes,
              "the slack holds the alignment and the smallest absmax");

inline size_t nested_workspace_bytes(int64_t blocks) {
  return static_cast<size_t>(blocks) * sizeof(float) + kWorkspaceSlackBytes +
         kMeanLanes * sizeof(double);
}

struct NestedWorkspace {
  float* absmax = nullptr;                  // [blocks]
  double* lane_sums = nullptr;              // [kMeanLanes]
  uint32_t* smallest_complement = nullptr;  // [1]: ~bits of the smallest non-zero absmax, 0: none
};

// The bytes the quantize kernel accumulates into, which start at zero.
constexpr size_t kMeanInputsBytes = kMeanLanes * sizeof(double) + sizeof(uint32_t);

inline NestedWorkspace nested_workspace(void* base, int64_t blocks) {
  const auto align_up = [](uintptr_t address, uintptr_t alignment) {
    return (address + alignment - 1) / alignment * alignment;
  };
  const uintptr_t absmax = align_up(reinterpret_cast<uintptr_t>(base), kAbsmaxAlignment);
  const uintptr_t lane_sums =
      align_up(absmax + static_cast<uintptr_t>(blocks) * sizeof(float), alignof(double));
  const uintptr_t smallest = lane_sums + kMeanLanes * sizeof(double);
  return NestedWorkspace{reinterpret_cast<float*>(absmax), reinterpret_cast<double*>(lane_sums),
                         reinterpret_cast<uint32_t*>(smallest)};
}

}  // namespace moeq::cuda
