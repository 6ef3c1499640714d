// Determinism of the CPU backend: the same inputs give the same bytes run after
// run and whatever the OpenMP thread count, the LoRA gradients included (every
// reduction has a fixed order; nothing accumulates through atomics).
#include "support/every_op.hpp"

#include <doctest/doctest.h>
#include <omp.h>

#include <vector>

using namespace moeq_test;

namespace {

// Restores the OpenMP thread count a case changed.
class ThreadCount {
 public:
  ThreadCount() : saved_(omp_get_max_threads()) {}
  ~ThreadCount() { omp_set_num_threads(saved_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int saved_;
};

}  // namespace

TEST_CASE("every operation writes the same bytes run after run") {
  EveryOp ops(20261129);
  for (Op op : kEveryOp) {
    INFO(std::string(op_name(op)));
    std::vector<uint8_t> first, again;
    REQUIRE(ops.run(op, first) == MOEQ_OK);
    for (int run = 0; run < 3; ++run) {
      REQUIRE(ops.run(op, again) == MOEQ_OK);
      CHECK(again == first);
    }
  }
}

TEST_CASE("every operation writes the same bytes with 1, 2, 3 and 4 OpenMP threads") {
  const ThreadCount restore;
  EveryOp ops(7);
  for (Op op : kEveryOp) {
    INFO(std::string(op_name(op)));
    omp_set_num_threads(1);
    std::vector<uint8_t> one_thread, threaded;
    REQUIRE(ops.run(op, one_thread) == MOEQ_OK);
    for (int threads : {2, 3, 4}) {
      INFO(threads << " threads");
      omp_set_num_threads(threads);
      REQUIRE(ops.run(op, threaded) == MOEQ_OK);
      CHECK(threaded == one_thread);
    }
  }
}
