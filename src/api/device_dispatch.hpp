// The check that a CUDA tensor can be served by this build on this machine.
#pragma once

#include "core/tensor_check.hpp"

#include <string>

namespace moeq {

// MOEQ_ERR_UNSUPPORTED when built without CUDA, MOEQ_ERR_NO_DEVICE when no GPU is
// visible or the device ordinal does not exist; the message names `argument`, the
// CUDA tensor that asked for the GPU.
void require_cuda_device(const Device& device, const std::string& argument);

}  // namespace moeq
