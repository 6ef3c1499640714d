// Progress: redrawn in place on a terminal (10 times a second at most), a line
// every 10 s into a log.
#include "cli/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace moeq::cli {
namespace {

double seconds_between(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

Progress::Progress(std::string verb, uint64_t total_tensors, uint64_t total_bytes, bool enabled)
    : verb_(std::move(verb)),
      total_tensors_(total_tensors),
      total_bytes_(total_bytes),
      enabled_(enabled),
      interactive_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void Progress::tensor_done(uint64_t bytes) {
  ++tensors_;
  bytes_ += bytes;
  const auto now = std::chrono::steady_clock::now();
  if (seconds_between(last_draw_, now) >= (interactive_ ? 0.1 : 10.0)) {
    last_draw_ = now;
    draw(false);
  }
}

double Progress::finish() {
  draw(true);
  return seconds_between(start_, std::chrono::steady_clock::now());
}

void Progress::draw(bool final_line) {
  if (!enabled_) return;
  const double seconds = std::max(1e-9, seconds_between(start_, std::chrono::steady_clock::now()));
  const double rate = bytes_ / seconds;
  const double eta = rate > 0 ? (total_bytes_ - bytes_) / rate : 0.0;
  std::fprintf(stderr, "%s%s: %llu/%llu tensors, %.2f/%.2f GB, %.1f tensors/s, %.2f GB/s, %s %.1f s%s",
               interactive_ ? "\r" : "", verb_.c_str(), (unsigned long long)tensors_,
               (unsigned long long)total_tensors_, bytes_ / 1e9, total_bytes_ / 1e9, tensors_ / seconds,
               rate / 1e9, final_line ? "in" : "eta", final_line ? seconds : eta,
               final_line || !interactive_ ? "\n" : "   ");
  std::fflush(stderr);
}

}  // namespace moeq::cli
