// Wall-clock timing for the benchmark: variants run round by round, interleaved,
// so that load from other processes falls on all of them alike; the median of
// each variant's rounds is reported, after one warm-up round.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace moeq_bench {

inline std::vector<double> interleaved_median_seconds(
    int rounds, const std::vector<std::function<void()>>& variants) {
  for (const auto& variant : variants) variant();  // warm-up: page faults, thread pools, caches
  std::vector<std::vector<double>> seconds(variants.size());
  for (int round = 0; round < rounds; ++round)
    for (size_t v = 0; v < variants.size(); ++v) {
      const auto start = std::chrono::steady_clock::now();
      variants[v]();
      seconds[v].push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  std::vector<double> medians;
  for (std::vector<double>& times : seconds) {
    std::sort(times.begin(), times.end());
    medians.push_back(times[times.size() / 2]);
  }
  return medians;
}

}  // namespace moeq_bench
