// The one exception the safetensors code throws: a message a user can act on.
#pragma once

#include <stdexcept>
#include <string>

namespace moeq::safetensors {

// Malformed or unreadable input, or an output that could not be written. The
// message names the file and tensor when they are known.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace moeq::safetensors
