// Grid sizes for persistent (grid-stride) kernels: as many CTAs as the current
// device holds at once, and never more than there is work. A second, partial wave
// would leave SMs idle while it runs, so the grid is one full wave.
#pragma once

#include "cuda_check.cuh"

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace moeq::cuda {

constexpr int kMaxCachedDevices = 64;

// Resident CTAs of `Kernel` with `threads` threads (no dynamic shared memory) on
// the current device, cached per kernel and device: the occupancy query is not free.
template <auto Kernel>
int64_t resident_ctas(int threads) {
  static std::atomic<int> cache[kMaxCachedDevices] = {};
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  const bool cacheable = device >= 0 && device < kMaxCachedDevices;
  if (cacheable) {
    const int cached = cache[device].load(std::memory_order_relaxed);
    if (cached > 0) return cached;
  }
  int multiprocessors = 0;
  check_cuda(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device),
             "cudaDeviceGetAttribute(MultiProcessorCount)");
  int per_multiprocessor = 0;
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_multiprocessor, Kernel, threads, 0),
             "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  const int resident = std::max(1, multiprocessors * per_multiprocessor);
  if (cacheable) cache[device].store(resident, std::memory_order_relaxed);
  return resident;
}

template <auto Kernel>
unsigned persistent_grid(int threads, int64_t work_items) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(work_items, resident_ctas<Kernel>(threads))));
}

}  // namespace moeq::cuda
