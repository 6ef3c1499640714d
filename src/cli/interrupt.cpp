// A signal handler that only sets a flag: the work loop checks it. It removes
// itself, so a second Ctrl-C ends the process at once.
#include "cli/interrupt.hpp"

#include "safetensors/error.hpp"

#include <csignal>

namespace moeq::cli {
namespace {

volatile std::sig_atomic_t interrupted = 0;

void remember_signal(int) { interrupted = 1; }

}  // namespace

void stop_on_interrupt() {
  struct sigaction action{};
  action.sa_handler = remember_signal;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

void throw_if_interrupted() {
  if (interrupted) throw safetensors::Error("interrupted");
}

}  // namespace moeq::cli
