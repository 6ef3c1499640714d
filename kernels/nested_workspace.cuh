// The device scratch of nested quantization: the float32 absmax of every block
// (quantized afterwards) and the kMeanLanes partial sums of their mean. Its size
// is the one moeq_quantized_layout reports (src/api/qtensor_check.cpp).
#pragma once

#include "core/nested.hpp"

#include <cstddef>
#include <cstdint>

namespace moeq::cuda {

// Room to align the two arrays inside a caller's buffer of any alignment.
constexpr size_t kWorkspaceSlackBytes = 64;
// The absmax array starts on a 32-byte sector so the mean's column reads are whole sectors.
constexpr uintptr_t kAbsmaxAlignment = 32;

inline size_t nested_workspace_bytes(int64_t blocks) {
  return static_cast<size_t>(blocks) * sizeof(float) + kWorkspaceSlackBytes +
         kMeanLanes * sizeof(double);
}

struct NestedWorkspace {
  float* absmax = nullptr;       // [blocks]
  double* lane_sums = nullptr;   // [kMeanLanes]
};

inline NestedWorkspace nested_workspace(void* base, int64_t blocks) {
  const auto align_up = [](uintptr_t address, uintptr_t alignment) {
    return (address + alignment - 1) / alignment * alignment;
  };
  const uintptr_t absmax = align_up(reinterpret_cast<uintptr_t>(base), kAbsmaxAlignment);
  const uintptr_t lane_sums =
      align_up(absmax + static_cast<uintptr_t>(blocks) * sizeof(float), alignof(double));
  return NestedWorkspace{reinterpret_cast<float*>(absmax), reinterpret_cast<double*>(lane_sums)};
}

}  // namespace moeq::cuda
