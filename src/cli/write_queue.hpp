// The thread that writes `moeq quantize`'s output: jobs run one at a time in the
// order they were posted, while the posting thread reads and quantizes the next tensors.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace moeq::cli {

class WriteQueue {
 public:
  WriteQueue();
  // Drops the jobs not started yet and waits for the one running.
  ~WriteQueue();
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;

  // Queues `job`; first rethrows the exception of a job that failed, if any (the
  // jobs after a failed one are dropped, never run).
  void post(std::function<void()> job);
  // Waits until every posted job has run; rethrows the first failure.
  void drain();

 private:
  void run();
  void rethrow_failure();  // with mutex_ held

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> jobs_;
  bool running_job_ = false, stopping_ = false;
  std::exception_ptr failure_;
  std::thread thread_;  // last: started once the rest is ready
};

}  // namespace moeq::cli
