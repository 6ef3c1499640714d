// WriteQueue: a job deque and one thread under one mutex.
#include "cli/write_queue.hpp"

namespace moeq::cli {

WriteQueue::WriteQueue() : thread_([this] { run(); }) {}

WriteQueue::~WriteQueue() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void WriteQueue::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    rethrow_failure();
    jobs_.push_back(std::move(job));
  }
  changed_.notify_all();
}

void WriteQueue::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return failure_ || (jobs_.empty() && !running_job_); });
  rethrow_failure();
}

void WriteQueue::rethrow_failure() {
  if (failure_) std::rethrow_exception(failure_);
}

void WriteQueue::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (stopping_) break;
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    if (failure_) continue;  // dropped: destroying it releases what it holds
    running_job_ = true;
    lock.unlock();
    std::exception_ptr failure;
    try {
      job();
    } catch (...) {
      failure = std::current_exception();
    }
    job = nullptr;  // release what it holds before anyone is told it ran
    lock.lock();
    running_job_ = false;
    if (failure && !failure_) failure_ = failure;
    changed_.notify_all();
  }
  jobs_.clear();
}

}  // namespace moeq::cli
