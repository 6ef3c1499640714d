// The check that a CUDA tensor can be served by this build on this machine.
#include "api/device_dispatch.hpp"

#include "core/backend.hpp"

namespace moeq {

void require_cuda_device(const Device& device, const std::string& argument) {
#if !MOEQ_WITH_CUDA
  (void)device;
  fail(MOEQ_ERR_UNSUPPORTED,
       argument + ": a CUDA tensor, but this libmoeq was built without CUDA; pass CPU tensors");
#else
  const int count = cuda::device_count();
  if (count == 0)
    fail(MOEQ_ERR_NO_DEVICE, argument + ": a CUDA tensor, but no GPU is visible to this process");
  if (device.id < 0 || device.id >= count)
    fail(MOEQ_ERR_NO_DEVICE, argument + ": on cuda:" + std::to_string(device.id) + " but only " +
                                 std::to_string(count) + " GPU(s) are visible");
#endif
}

}  // namespace moeq
