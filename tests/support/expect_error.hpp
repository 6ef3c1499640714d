// The check every bad-input test makes: the call's status, and a message that
// starts by naming the argument (moeq_last_error's "argument: expectation").
#pragma once

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <string>

namespace moeq_test {

inline void expect_error(moeq_status status, moeq_status expected, const std::string& message_start) {
  const std::string message = moeq_last_error();
  INFO("message: " << message);
  CHECK(std::string(moeq_status_name(status)) == std::string(moeq_status_name(expected)));
  CHECK(message.rfind(message_start, 0) == 0);
}

}  // namespace moeq_test
