// The parts of `moeq quantize`'s pipeline that run on any machine: the writer
// thread's queue, lending result slots, and reading a tensor with every core.
#include "cli/parallel_read.hpp"
#include "cli/quantizer.hpp"
#include "cli/write_queue.hpp"
#include "safetensors/error.hpp"
#include "safetensors/writer.hpp"
#include "support/scratch_folder.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

using moeq::cli::WriteQueue;
using moeq::safetensors::Dtype;
using moeq::safetensors::Error;
using moeq::safetensors::File;
using moeq_test::ScratchFolder;

namespace {

class EmptySlot final : public moeq::cli::ResultSlot {
 public:
  moeq::cli::QuantizedBytes wait() override { return {}; }
};

}  // namespace

TEST_CASE("the write queue runs its jobs in the order posted, on a thread of its own") {
  const std::thread::id poster = std::this_thread::get_id();
  std::vector<int> order;
  bool on_poster = false;
  WriteQueue queue;
  for (int i = 0; i < 100; ++i)
    queue.post([&, i] {
      order.push_back(i);
      on_poster = on_poster || std::this_thread::get_id() == poster;
    });
  queue.drain();
  CHECK(order.size() == 100);
  CHECK(std::is_sorted(order.begin(), order.end()));
  CHECK_FALSE(on_poster);
}

TEST_CASE("after a failed job the later ones never run, and posting or draining rethrows its error") {
  std::atomic<int> ran{0};
  std::atomic<bool> fail{false};
  WriteQueue queue;
  queue.post([&] {
    while (!fail) std::this_thread::yield();
    throw Error("disk full");
  });
  queue.post([&] { ++ran; });
  fail = true;
  CHECK_THROWS_WITH_AS(queue.drain(), "disk full", Error);
  CHECK_THROWS_WITH_AS(queue.post([&] { ++ran; }), "disk full", Error);
  CHECK(ran == 0);
}

TEST_CASE("destroying the queue drops the jobs not started and releases what they hold") {
  EmptySlot slot;
  std::atomic<bool> started{false}, finish{false};
  std::atomic<int> ran{0};
  std::thread finisher;
  {
    WriteQueue queue;
    queue.post([&] {
      started = true;
      while (!finish) std::this_thread::yield();
    });
    const moeq::cli::QuantizedResult result = moeq::cli::lend(slot);
    queue.post([&, result] { ++ran; });
    while (!started) std::this_thread::yield();
    // The first job still runs when the queue goes away: the second never starts.
    finisher = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      finish = true;
    });
  }
  finisher.join();
  CHECK(ran == 0);
  moeq::cli::lend(slot);  // would block forever had the dropped job kept it
}

TEST_CASE("a lent slot is lent again only once every copy of its result is gone") {
  EmptySlot slot;
  moeq::cli::QuantizedResult first = moeq::cli::lend(slot);
  std::atomic<bool> lent_again{false};
  std::thread borrower([&] {
    moeq::cli::lend(slot);
    lent_again = true;
  });
  moeq::cli::QuantizedResult copy = first;
  first.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(lent_again);
  copy.reset();
  borrower.join();
  CHECK(lent_again);
}

TEST_CASE("reading a tensor with every core gives its bytes, for any range") {
  ScratchFolder folder;
  const int64_t count = (int64_t{5} << 20) + 3;  // several 2 MiB pieces and a ragged end
  std::vector<uint8_t> bytes(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) bytes[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  {
    moeq::safetensors::Writer writer(folder / "t.safetensors",
                                     {{"small", Dtype::U8, {3}}, {"big", Dtype::U8, {count}}}, {});
    writer.write("small", "abc", 3);
    writer.write("big", bytes.data(), bytes.size());
    writer.commit();
  }
  const File file(folder / "t.safetensors");
  const auto& big = *file.find("big");
  const uint64_t piece = uint64_t{2} << 20;
  for (const auto& [offset, length] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, static_cast<uint64_t>(count)}, {1, 7}, {piece - 1, piece + piece / 2 + 4}, {0, 0}}) {
    INFO("offset ", offset, " length ", length);
    std::vector<uint8_t> copy(length + 1, 0xEE);
    moeq::cli::read_in_parallel(file, big, offset, length, copy.data());
    CHECK(std::memcmp(copy.data(), bytes.data() + offset, length) == 0);
    CHECK(copy[length] == 0xEE);
  }
  std::vector<uint8_t> copy(16);
  CHECK_THROWS_WITH_AS(moeq::cli::read_in_parallel(file, *file.find("small"), 2, 2, copy.data()),
                       doctest::Contains("of 'small', which has 3"), Error);
}
