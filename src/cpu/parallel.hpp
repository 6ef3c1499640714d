// How the CPU backend sizes its OpenMP regions: the thread count a piece of work
// is worth, and per-thread float32 scratch allocated before the region (so that
// running out of memory becomes a status instead of a throw inside it).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace moeq::cpu {

// Threads for a region doing `flops` of work split into `items` pieces: one per
// kFlopsPerThread, since waking a thread and meeting it at the closing barrier
// costs microseconds, and far more when the machine is oversubscribed.
inline int threads_for(double flops, int64_t items) {
  constexpr double kFlopsPerThread = 4e6;  // ~50 us of one core's BLAS
  const double worth = std::max(1.0, flops / kFlopsPerThread);
  const int64_t threads = std::min<int64_t>({static_cast<int64_t>(omp_get_max_threads()), items,
                                             static_cast<int64_t>(std::min(worth, 1e9))});
  return static_cast<int>(std::max<int64_t>(threads, 1));
}

class ThreadScratch {
 public:
  ThreadScratch(int64_t floats_per_thread, int threads)
      : floats_per_thread_(floats_per_thread),
        storage_(static_cast<size_t>(threads * floats_per_thread)) {}

  // The area of the calling thread; the region must have at most `threads` threads.
  float* mine() { return storage_.data() + omp_get_thread_num() * floats_per_thread_; }

 private:
  int64_t floats_per_thread_;
  std::vector<float> storage_;
};

}  // namespace moeq::cpu
