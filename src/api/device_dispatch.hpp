// The check that a CUDA tensor can be served by this build on this machine.
#pragma once

#include "core/tensor_check.hpp"

namespace moeq {

// MOEQ_ERR_UNSUPPORTED when built without CUDA, MOEQ_ERR_NO_DEVICE when no GPU is
// visible or the device ordinal does not exist.
void require_cuda_device(const Device& device);

}  // namespace moeq
