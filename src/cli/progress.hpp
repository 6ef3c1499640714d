// The progress line on stderr: tensors done, bytes done, tensors/s and GB/s.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace moeq::cli {

class Progress {
 public:
  // `verb` starts the line ("quantize"); nothing is drawn when !enabled.
  Progress(std::string verb, uint64_t total_tensors, uint64_t total_bytes, bool enabled);
  void tensor_done(uint64_t bytes);
  // Ends the line with the totals; returns the seconds since construction.
  double finish();

 private:
  void draw(bool final_line);

  std::string verb_;
  uint64_t total_tensors_, total_bytes_, tensors_ = 0, bytes_ = 0;
  bool enabled_, interactive_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace moeq::cli
