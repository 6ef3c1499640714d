// The device scratch of one expert GEMM call: a plan of aligned regions (the
// same arithmetic answers the workspace-size query and carves the memory), and
// the memory itself, the caller's workspace or a stream-ordered allocation.
#pragma once

#include "cuda_check.cuh"

#include <cstddef>
#include <cstdint>

namespace moeq::cuda {

class WorkspacePlan {
 public:
  static constexpr size_t kAlignment = 256;

  // Reserves `bytes` and returns the region's offset from the aligned base.
  size_t add(size_t bytes) {
    const size_t offset = used_;
    used_ += (bytes + kAlignment - 1) / kAlignment * kAlignment;
    return offset;
  }
  // What the caller must pass: the regions plus slack to align any base pointer.
  size_t bytes() const { return used_ == 0 ? 0 : used_ + kAlignment; }

 private:
  size_t used_ = 0;
};

// The caller's workspace when given (its size was checked against the plan), else
// memory from the stream-ordered allocator, released on the stream at scope exit.
class Scratch {
 public:
  Scratch(void* workspace, size_t bytes, cudaStream_t stream) : owned_(stream) {
    if (workspace == nullptr && bytes > 0) workspace = owned_.allocate(bytes);
    const uintptr_t address = reinterpret_cast<uintptr_t>(workspace);
    base_ = reinterpret_cast<char*>((address + WorkspacePlan::kAlignment - 1) /
                                    WorkspacePlan::kAlignment * WorkspacePlan::kAlignment);
  }

  void* at(size_t offset) const { return base_ + offset; }

 private:
  StreamScratch owned_;
  char* base_ = nullptr;
};

}  // namespace moeq::cuda
