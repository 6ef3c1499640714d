// Per-thread float32 scratch for OpenMP regions, allocated before the region so
// that running out of memory becomes a status instead of a throw inside it.
#pragma once

#include <omp.h>

#include <cstdint>
#include <vector>

namespace moeq::cpu {

class ThreadScratch {
 public:
  explicit ThreadScratch(int64_t floats_per_thread)
      : threads_(omp_get_max_threads()),
        floats_per_thread_(floats_per_thread),
        storage_(static_cast<size_t>(threads_ * floats_per_thread)) {}

  // The thread count the region must be opened with (num_threads) so that
  // every thread number has its own area.
  int threads() const { return threads_; }
  float* mine() { return storage_.data() + omp_get_thread_num() * floats_per_thread_; }

 private:
  int threads_;
  int64_t floats_per_thread_;
  std::vector<float> storage_;
};

}  // namespace moeq::cpu
