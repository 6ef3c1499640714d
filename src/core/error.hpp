// Internal error channel: C++ exceptions inside the library, turned into a
// moeq_status and a thread-local message at the C boundary (api_guard).
#pragma once

#include <moeq/moeq.h>

#include <stdexcept>
#include <string>

namespace moeq {

class Error : public std::runtime_error {
 public:
  Error(moeq_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  moeq_status status() const noexcept { return status_; }

 private:
  moeq_status status_;
};

[[noreturn]] inline void fail(moeq_status status, const std::string& message) {
  throw Error(status, message);
}

// "argument: expectation" — the shape every argument error takes.
[[noreturn]] inline void fail_argument(const std::string& argument, const std::string& expectation) {
  throw Error(MOEQ_ERR_INVALID_ARGUMENT, argument + ": " + expectation);
}

void set_last_error(const std::string& message);
void clear_last_error();

// Runs `body` and converts whatever it throws into a status; nothing escapes.
template <class Body>
moeq_status api_guard(Body&& body) noexcept {
  try {
    clear_last_error();
    body();
    return MOEQ_OK;
  } catch (const Error& error) {
    set_last_error(error.what());
    return error.status();
  } catch (const std::bad_alloc&) {
    set_last_error("out of host memory");
    return MOEQ_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& error) {
    set_last_error(std::string("internal error: ") + error.what());
    return MOEQ_ERR_INTERNAL;
  } catch (...) {
    set_last_error("internal error: unknown exception");
    return MOEQ_ERR_INTERNAL;
  }
}

}  // namespace moeq
