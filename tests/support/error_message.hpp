// For suites that check the words of an error: the message a call throws.
#pragma once

#include <string>

namespace moeq_test {

// The what() of the `Exception` that `call` throws, or "" if it throws none.
template <class Exception, class Call>
std::string message_of(Call&& call) {
  try {
    call();
  } catch (const Exception& error) {
    return error.what();
  }
  return "";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace moeq_test
