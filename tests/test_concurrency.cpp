// Concurrency on the CPU: 8 threads calling every operation at once for a few
// seconds get the serial results bit for bit, and each thread's moeq_last_error()
// stays its own while the others fail differently.
#include "support/concurrent_calls.hpp"
#include "support/every_op.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

using namespace moeq_test;

namespace {

// A bad call of its own for each thread, so no two threads expect the same message:
// even threads give a blocksize no other thread gives, odd threads an ndim.
moeq_status bad_call(int thread) {
  if (thread % 2 == 0) {
    const moeq_quant_config config{sizeof(moeq_quant_config), MOEQ_FORMAT_NF4, 100 + thread, 0};
    const int64_t shape[1] = {64};
    moeq_quant_layout layout{};
    layout.struct_size = sizeof(layout);
    return moeq_quantized_layout(&config, 1, shape, &layout);
  }
  DLManagedTensorVersioned* tensor = nullptr;
  const int64_t shape[1] = {4};
  return moeq_tensor_empty(100 + thread, shape, DLDataType{kDLFloat, 32, 1}, DLDevice{kDLCPU, 0},
                           &tensor);
}

}  // namespace

TEST_CASE("8 threads calling every operation at once get the serial results and their own errors") {
  EveryOp ops(99);
  std::vector<std::vector<uint8_t>> serial;
  std::vector<std::string> names;
  for (Op op : kEveryOp) {
    serial.emplace_back();
    REQUIRE(ops.run(op, serial.back()) == MOEQ_OK);
    names.push_back(op_name(op));
  }
  const auto make_worker = [&](int) {
    return [&](size_t op, std::vector<uint8_t>& bytes) { return ops.run(kEveryOp[op], bytes); };
  };
  check_tallies(run_concurrently(8, serial, make_worker, bad_call), names);
}
