// Kernels of one op launched as a chain (programmatic dependent launch, sm_90+): the
// next kernel in the stream may be scheduled while this one's last blocks still run,
// instead of after it drains, so a layer's ~10-20 launches do not each leave the GPU
// idle between two kernels.
//
// The contract, for every kernel launched by launch_chained: its first statement is
// enter_chained_kernel(), before any global memory access and before any early
// return. griddepcontrol.wait holds the kernel until every grid it depends on has
// completed and its writes are visible, so a chained kernel behaves exactly as if
// launched after the previous one; and since each kernel waits before it can
// complete, completion stays in stream order down the chain. Then it lets its own
// dependents launch (they wait in turn). Launched any other way, or before sm_90,
// both instructions are no-ops.
//
// One exception (ChainEntry::WaitBeforeWrites): a kernel whose predecessor in the chain
// produced nothing it reads before some point may run up to that point first. It lets
// its dependents launch at entry and waits before the point, before any global write
// and before any exit. That is safe when its predecessor waits first (the contract
// above): a kernel launches only after every block of its predecessor has entered,
// and so has waited in turn, so everything the chain produced before the predecessor
// is complete and visible, and what the predecessor writes is read only after the
// wait. Its successor waits for its completion, which comes after its wait, so the
// chain completes in order as before. The decode GEMMs use it when the LoRA
// projection just before them writes only the rows their epilogue reads.
#pragma once

#include "cuda_check.cuh"

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <utility>

namespace moeq::cuda {

// Holds the kernel until the grids it depends on have completed and their writes are visible.
__device__ __forceinline__ void wait_for_chained_inputs() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel in the chain launch (it waits in turn).
__device__ __forceinline__ void allow_chained_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void enter_chained_kernel() {
  wait_for_chained_inputs();
  allow_chained_dependents();
}

// Where a chained kernel waits for its predecessor: at entry (the contract above), or
// before its first global write and before any exit, for a kernel whose predecessor
// wrote nothing it reads before then (the exception above).
enum class ChainEntry : uint8_t { WaitFirst, WaitBeforeWrites };

// The kernel's entry under `entry`: enter_chained_kernel, or only letting its
// dependents launch (the kernel then calls wait_for_chained_inputs itself).
__device__ __forceinline__ void enter_chained_kernel(ChainEntry entry) {
  if (entry == ChainEntry::WaitFirst) wait_for_chained_inputs();
  allow_chained_dependents();
}

// Whether the current device takes programmatic dependent launch (compute
// capability 9.0 and up), cached per device.
inline bool device_chains_launches() {
  constexpr int kDevices = 64;
  static std::atomic<int> cache[kDevices] = {};  // 0 unknown, 1 no, 2 yes
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  const bool cacheable = device >= 0 && device < kDevices;
  if (cacheable) {
    const int cached = cache[device].load(std::memory_order_relaxed);
    if (cached != 0) return cached == 2;
  }
  int major = 0;
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
             "cudaDeviceGetAttribute(ComputeCapabilityMajor)");
  if (cacheable) cache[device].store(major >= 9 ? 2 : 1, std::memory_order_relaxed);
  return major >= 9;
}

// kernel<<<grid, block, shared_bytes, stream>>>(args...), chained to the kernel before
// it in the stream where the device allows; errors name `kernel_name`.
template <class... Params, class... Args>
void launch_chained(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                    const char* kernel_name, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute chained{};
  chained.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  chained.val.programmaticStreamSerializationAllowed = 1;
  if (device_chains_launches()) {
    config.attrs = &chained;
    config.numAttrs = 1;
    // Where the stream or the driver refuses the chain, the plain launch in stream order
    // (a configuration error fails again below, with its own message).
    if (cudaLaunchKernelEx(&config, kernel, args...) == cudaSuccess) return;
    cudaGetLastError();
    config.attrs = nullptr;
    config.numAttrs = 0;
  }
  check_cuda(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...), kernel_name);
}

}  // namespace moeq::cuda
