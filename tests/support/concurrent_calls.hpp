// Many threads calling moeq at once for a while, checked against a serial run:
// every call returns MOEQ_OK with the serial call's bytes, and each thread's
// moeq_last_error() is the message of its own bad call, whatever the others do.
// The engine of the CPU and GPU concurrency suites.
#pragma once

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace moeq_test {

// MOEQ_CONCURRENCY_SECONDS overrides the 5 seconds the threads run for.
inline std::chrono::duration<double> concurrency_run_time() {
  const char* text = std::getenv("MOEQ_CONCURRENCY_SECONDS");
  return std::chrono::duration<double>(text != nullptr ? std::atof(text) : 5.0);
}

struct ThreadTally {
  std::vector<int64_t> calls;     // per operation
  int64_t failed_calls = 0;       // a status other than MOEQ_OK, or a message after one
  int64_t different_results = 0;  // bytes unlike the serial call's
  int64_t foreign_errors = 0;     // moeq_last_error() not this thread's own
};

// Thread t makes worker = make_worker(t), then until the deadline calls
// worker(op, bytes) (op = t, t + 1, ... modulo the operations, so all of them run
// at once) and bad_call(t), a failing call whose message no other thread's gives.
// Each thread makes at least one round of every operation, however short the time
// (under racecheck one call can take longer than the whole run time).
template <class MakeWorker, class BadCall>
std::vector<ThreadTally> run_concurrently(int thread_count,
                                          const std::vector<std::vector<uint8_t>>& serial,
                                          MakeWorker make_worker, BadCall bad_call) {
  std::vector<std::string> own_error(static_cast<size_t>(thread_count));
  for (int t = 0; t < thread_count; ++t) {
    REQUIRE(bad_call(t) != MOEQ_OK);
    own_error[t] = moeq_last_error();
  }
  const size_t ops = serial.size();
  std::vector<ThreadTally> tallies(static_cast<size_t>(thread_count));
  const auto deadline = std::chrono::steady_clock::now() + concurrency_run_time();
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_count; ++t)
    threads.emplace_back([&, t] {
      ThreadTally& tally = tallies[t];
      tally.calls.assign(ops, 0);
      auto worker = make_worker(t);
      std::vector<uint8_t> bytes;
      const size_t first_round_end = static_cast<size_t>(t) + ops;
      for (size_t i = static_cast<size_t>(t); i < first_round_end || std::chrono::steady_clock::now() < deadline;
           ++i) {
        const size_t op = i % ops;
        ++tally.calls[op];
        if (worker(op, bytes) != MOEQ_OK || moeq_last_error()[0] != '\0') ++tally.failed_calls;
        if (bytes != serial[op]) ++tally.different_results;
        bad_call(t);
        std::this_thread::yield();  // let the others fail before this thread reads its message
        if (moeq_last_error() != own_error[t]) ++tally.foreign_errors;
      }
    });
  for (std::thread& thread : threads) thread.join();
  return tallies;
}

// Checks the tallies and reports the calls each operation got (`names[op]`).
inline void check_tallies(const std::vector<ThreadTally>& tallies,
                          const std::vector<std::string>& names) {
  std::vector<int64_t> calls(names.size(), 0);
  for (size_t t = 0; t < tallies.size(); ++t) {
    INFO("thread " << t);
    CHECK(tallies[t].failed_calls == 0);
    CHECK(tallies[t].different_results == 0);
    CHECK(tallies[t].foreign_errors == 0);
    for (size_t op = 0; op < names.size() && op < tallies[t].calls.size(); ++op)
      calls[op] += tallies[t].calls[op];
  }
  for (size_t op = 0; op < names.size(); ++op) {
    MESSAGE(calls[op] << " concurrent calls of " << names[op] << " from " << tallies.size()
                      << " threads");
    CHECK(calls[op] >= 2);
  }
}

}  // namespace moeq_test
