// An expert GEMM of 2^20 rows on the GPU whose y has more than 2^31 elements, forward
// (y, x_lora_a) and backward (grad_x, grad_lora_a, grad_lora_b, with grad_y = y), in
// both weight layouts: no 32-bit index overflows anywhere. Checked against float64 at
// sampled rows of y and grad_x (every expert's ends, the rows around y's element 2^31,
// a few hundred random ones), at every row of x_lora_a and every element of the LoRA
// gradients; the unrouted rows keep their poison. Runs with MOEQ_LARGE_TESTS=1 (about
// 6 GB of GPU and 10 GB of host memory); skips otherwise and where no GPU is visible.
#include <doctest/doctest.h>
#include <moeq/moeq.h>

#if MOEQ_WITH_CUDA

#include "support/expert_gemm_backward_case.hpp"
#include "test_cuda_expert_gemm_common.hpp"

#include <chrono>
#include <cstring>
#include <set>
#include <thread>

using namespace moeq_gpu_test;

namespace {

constexpr int64_t kOutFeatures = 2304, kInFeatures = 256, kRank = 16;
// y's flat element 2^31 lies in this row (2^31 = 932067 * 2304 + 1280).
constexpr int64_t kRowOfElement2To31 = (int64_t{1} << 31) / kOutFeatures;
constexpr int64_t kRandomSampledRows = 300;

bool large_tests_enabled() {
  const char* flag = std::getenv("MOEQ_LARGE_TESTS");
  return flag != nullptr && std::strcmp(flag, "1") == 0;
}

// One run: the problem, and what differs between the two layouts' runs besides it.
struct LargeRun {
  ExpertGemmCase spec;
  DLDataType x_lora_a_type = float32_type();
  bool backward_takes_x_lora_a = false;  // else the backward recomputes x A^T from x
};

// 2^20 rows of bfloat16, NF4 blocksize 64, rank 16: experts of 400001 rows, none,
// 537000 rows (across y's element 2^31) and 111572 rows (all past it), 3 unrouted.
LargeRun large_run(int32_t layout) {
  LargeRun run;
  ExpertGemmCase& c = run.spec;
  c.format = MOEQ_FORMAT_NF4;
  c.blocksize = 64;
  c.layout = layout;
  c.in_features = kInFeatures;
  c.out_features = kOutFeatures;
  c.rank = kRank;
  c.rows_per_expert = {400001, 0, 537000, 111572};
  c.unrouted_rows = 3;
  c.activation = bfloat16_type();
  c.lora_scale = -1.25f;
  // The [E, K, N] run takes the other options: nested statistics, bfloat16 LoRA in
  // PEFT's lora_B layout, int64 group_end, the forward's x_lora_a into the backward.
  const bool other_options = layout == MOEQ_LAYOUT_EXPERT_IN_OUT;
  c.nested = other_options;
  c.lora = other_options ? bfloat16_type() : float32_type();
  c.peft_lora_b = other_options;
  c.group_end_int64 = other_options;
  run.x_lora_a_type = other_options ? bfloat16_type() : float32_type();
  run.backward_takes_x_lora_a = other_options;
  return run;
}

// Every output of both calls, poisoned on the host and copied to the device so.
struct LargeOutputs {
  explicit LargeOutputs(const LargeRun& run)
      : y(run.spec.activation, {run.spec.rows(), run.spec.out_features}),
        x_lora_a(run.x_lora_a_type, {run.spec.rows(), run.spec.rank}),
        grad_x(run.spec.activation, {run.spec.rows(), run.spec.in_features}),
        grad_lora_a(run.spec.lora, {run.spec.experts(), run.spec.rank, run.spec.in_features}),
        grad_lora_b(lora_b_tensor(run.spec.lora, run.spec.experts(), run.spec.out_features,
                                  run.spec.rank, run.spec.peft_lora_b)),
        y_device(y), x_lora_a_device(x_lora_a), grad_x_device(grad_x),
        grad_lora_a_device(grad_lora_a), grad_lora_b_device(grad_lora_b) {}
  void download() {
    y_device.download(y);
    x_lora_a_device.download(x_lora_a);
    grad_x_device.download(grad_x);
    grad_lora_a_device.download(grad_lora_a);
    grad_lora_b_device.download(grad_lora_b);
  }
  HostTensor y, x_lora_a, grad_x, grad_lora_a, grad_lora_b;
  DeviceTensor y_device, x_lora_a_device, grad_x_device, grad_lora_a_device, grad_lora_b_device;
};

template <class Args>
void use_device_inputs(Args& args, DeviceInputs& device) {
  args.x = device.x.dl();
  args.weight = device.weight.q();
  args.group_end = device.group_end.dl();
  args.lora_a = device.lora_a.dl();
  args.lora_b = device.lora_b.dl();
}

// Runs `launch` on the default stream, requires MOEQ_OK and returns the GPU milliseconds.
template <class Launch>
float gpu_milliseconds(Launch launch) {
  cudaEvent_t start, stop;
  REQUIRE_CUDA(cudaEventCreate(&start));
  REQUIRE_CUDA(cudaEventCreate(&stop));
  REQUIRE_CUDA(cudaEventRecord(start, nullptr));
  const moeq_status status = launch();
  REQUIRE_CUDA(cudaEventRecord(stop, nullptr));
  REQUIRE_CUDA(cudaEventSynchronize(stop));
  float milliseconds = 0;
  REQUIRE_CUDA(cudaEventElapsedTime(&milliseconds, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  INFO(std::string(moeq_last_error()));
  REQUIRE(status == MOEQ_OK);
  return milliseconds;
}

// body(begin, end, worker) over [0, count) split among the machine's cores; the
// float64 references are too slow on one core at this size.
int64_t worker_count() { return std::max<int64_t>(1, std::thread::hardware_concurrency()); }

template <class Body>
void split_over_cores(int64_t count, Body body) {
  const int64_t workers = worker_count();
  std::vector<std::thread> threads;
  for (int64_t w = 0; w < workers; ++w)
    threads.emplace_back(body, count * w / workers, count * (w + 1) / workers, w);
  for (std::thread& thread : threads) thread.join();
}

int64_t expert_of(const ExpertGemmInputs& in, int64_t row) {
  int64_t e = 0, end = in.spec.rows_per_expert[0];
  while (row >= end) end += in.spec.rows_per_expert[++e];
  return e;
}

// Row `row` of a contiguous bfloat16 matrix as doubles; returns how many are not
// finite (an element no call wrote is still the NaN poison).
int64_t bfloat16_row(const HostTensor& matrix, int64_t row, int64_t cols, double* values) {
  const uint16_t* bits = matrix.as<uint16_t>() + row * cols;
  int64_t not_finite = 0;
  for (int64_t i = 0; i < cols; ++i) {
    values[i] = bfloat16_to_double(bits[i]);
    not_finite += std::isfinite(values[i]) ? 0 : 1;
  }
  return not_finite;
}

// References over every routed row: x A^T [routed, r] and the LoRA gradients, with
// grad_y = the y the GPU wrote; and the routed elements of y and grad_x not finite.
struct FullReferences {
  Reference x_lora_a, grad_lora_a, grad_lora_b;
  int64_t y_not_finite = 0, grad_x_not_finite = 0;
};

FullReferences full_references(const ExpertGemmInputs& in, const LargeRun& run,
                               const LargeOutputs& out) {
  const int64_t E = in.spec.experts(), K = kInFeatures, N = kOutFeatures, R = kRank;
  FullReferences full;
  full.x_lora_a.resize(static_cast<size_t>(in.spec.routed_rows() * R));
  std::vector<FullReferences> partial(static_cast<size_t>(worker_count()));
  split_over_cores(in.spec.routed_rows(), [&](int64_t begin, int64_t end, int64_t worker) {
    FullReferences& mine = partial[worker];
    mine.grad_lora_a.resize(static_cast<size_t>(E * R * K));
    mine.grad_lora_b.resize(static_cast<size_t>(E * N * R));
    std::vector<double> grad_y(N), grad_x(K);
    double projection[kRank], projection_bound[kRank], g[kRank], g_bound[kRank];
    for (int64_t m = begin; m < end; ++m) {
      const int64_t e = expert_of(in, m);
      mine.y_not_finite += bfloat16_row(out.y, m, N, grad_y.data());
      mine.grad_x_not_finite += bfloat16_row(out.grad_x, m, K, grad_x.data());
      reference_x_lora_a_row(in, e, m, full.x_lora_a.value.data() + m * R, full.x_lora_a.bound.data() + m * R);
      // The backward's x A^T: the one it was given, or its own (exact here).
      for (int64_t j = 0; j < R; ++j) {
        const bool given = run.backward_takes_x_lora_a;
        projection[j] = given ? out.x_lora_a.flat(m * R + j) : full.x_lora_a.value[m * R + j];
        projection_bound[j] = given ? std::fabs(projection[j]) : full.x_lora_a.bound[m * R + j];
      }
      reference_grad_y_lora_b_row(in, e, grad_y.data(), g, g_bound);
      accumulate_lora_gradients_row(in, e, m, grad_y.data(), g, g_bound, projection, projection_bound,
                                    mine.grad_lora_a, mine.grad_lora_b);
    }
  });
  full.grad_lora_a.resize(static_cast<size_t>(E * R * K));
  full.grad_lora_b.resize(static_cast<size_t>(E * N * R));
  for (const FullReferences& mine : partial) {
    for (size_t i = 0; i < full.grad_lora_a.value.size(); ++i) {
      full.grad_lora_a.value[i] += mine.grad_lora_a.value[i];
      full.grad_lora_a.bound[i] += mine.grad_lora_a.bound[i];
    }
    for (size_t i = 0; i < full.grad_lora_b.value.size(); ++i) {
      full.grad_lora_b.value[i] += mine.grad_lora_b.value[i];
      full.grad_lora_b.bound[i] += mine.grad_lora_b.bound[i];
    }
    full.y_not_finite += mine.y_not_finite;
    full.grad_x_not_finite += mine.grad_x_not_finite;
  }
  return full;
}

// Every expert's first two and last two rows, the rows around y's element 2^31 and
// random routed rows, in order.
std::vector<int64_t> sampled_rows(const ExpertGemmInputs& in, std::mt19937_64& rng) {
  std::set<int64_t> rows;
  for (int64_t e = 0; e < in.spec.experts(); ++e) {
    const int64_t count = in.spec.rows_per_expert[e];
    for (int64_t i : {int64_t{0}, int64_t{1}, count - 2, count - 1})
      if (i >= 0 && i < count) rows.insert(in.begin(e) + i);
  }
  for (int64_t row = kRowOfElement2To31 - 2; row <= kRowOfElement2To31 + 2; ++row) rows.insert(row);
  std::uniform_int_distribution<int64_t> any_row(0, in.spec.routed_rows() - 1);
  for (size_t wanted = rows.size() + kRandomSampledRows; rows.size() < wanted;)
    rows.insert(any_row(rng));
  return {rows.begin(), rows.end()};
}

// y [rows, N] and grad_x [rows, K] at the sampled rows.
struct SampledReferences {
  Reference y, grad_x;
};

SampledReferences sampled_references(const ExpertGemmInputs& in, const LargeOutputs& out,
                                     const std::vector<int64_t>& rows,
                                     const Reference& x_lora_a) {
  const int64_t K = kInFeatures, N = kOutFeatures, R = kRank;
  SampledReferences sampled;
  sampled.y.resize(rows.size() * N);
  sampled.grad_x.resize(rows.size() * K);
  split_over_cores(static_cast<int64_t>(rows.size()), [&](int64_t begin, int64_t end, int64_t) {
    std::vector<double> grad_y(N);
    double g[kRank], g_bound[kRank];
    for (int64_t i = begin; i < end; ++i) {
      const int64_t m = rows[i], e = expert_of(in, m);
      reference_y_row(in, e, m, x_lora_a.value.data() + m * R, x_lora_a.bound.data() + m * R,
                      sampled.y.value.data() + i * N, sampled.y.bound.data() + i * N);
      bfloat16_row(out.y, m, N, grad_y.data());
      reference_grad_y_lora_b_row(in, e, grad_y.data(), g, g_bound);
      reference_grad_x_row(in, e, grad_y.data(), g, g_bound, sampled.grad_x.value.data() + i * K,
                           sampled.grad_x.bound.data() + i * K);
    }
  });
  return sampled;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void check_large_expert_gemm(const LargeRun& run) {
  if (skip_without_gpu()) return;
  if (!large_tests_enabled()) {
    MESSAGE("skipped: set MOEQ_LARGE_TESTS=1 (needs about 6 GB of GPU and 10 GB of host memory)");
    return;
  }
  CAPTURE(run.spec.describe());
  const auto started = std::chrono::steady_clock::now();
  std::mt19937_64 rng(20261201);
  ExpertGemmInputs in(run.spec, rng);
  LargeOutputs out(run);
  DeviceInputs device(in);
  const double prepare_seconds = seconds_since(started);

  moeq_expert_gemm_args forward = forward_args(in, out.y_device.dl(), out.x_lora_a_device.dl());
  use_device_inputs(forward, device);
  size_t forward_bytes = 0;
  REQUIRE(moeq_expert_gemm_workspace_size(&forward, &forward_bytes) == MOEQ_OK);
  CallerWorkspace forward_workspace;
  forward_workspace.attach(forward, forward_bytes, true);
  const float forward_ms =
      gpu_milliseconds([&] { return moeq_expert_gemm_lora(&forward, nullptr); });

  // grad_y = y: no 5 GB of fresh random numbers, and its unrouted rows are NaN
  // poison, which the LoRA gradients would show if the backward read them.
  moeq_expert_gemm_grad_args backward =
      backward_args(in, out.y_device.dl(), out.grad_x_device.dl(), out.grad_lora_a_device.dl(),
                    out.grad_lora_b_device.dl());
  use_device_inputs(backward, device);
  if (run.backward_takes_x_lora_a) backward.x_lora_a = out.x_lora_a_device.dl();
  size_t backward_bytes = 0;
  REQUIRE(moeq_expert_gemm_grad_workspace_size(&backward, &backward_bytes) == MOEQ_OK);
  CallerWorkspace backward_workspace;
  backward_workspace.attach(backward, backward_bytes, true);
  const float backward_ms =
      gpu_milliseconds([&] { return moeq_expert_gemm_lora_backward(&backward, nullptr); });
  out.download();

  const auto checking = std::chrono::steady_clock::now();
  const ExpertGemmCase& c = in.spec;
  const double tolerance = gpu_tolerance(c.activation);
  SweepReport report;
  const auto check = [&](const char* what, const Agreement& agreement) {
    CHECK_MESSAGE(agreement.failures == 0, what << ": " << agreement.failures << " elements, first "
                                                << agreement.first_failure);
    report.add(what, c.activation, agreement);
  };
  const FullReferences full = full_references(in, run, out);
  CHECK(full.y_not_finite == 0);
  CHECK(full.grad_x_not_finite == 0);
  check("x_lora_a (every row)", compare_matrix(full.x_lora_a, tolerance, out.x_lora_a, c.rank));
  check("grad_lora_a (all)",
        compare_stack(full.grad_lora_a, tolerance, out.grad_lora_a, c.rank, c.in_features));
  check("grad_lora_b (all)",
        compare_stack(full.grad_lora_b, tolerance, out.grad_lora_b, c.out_features, c.rank));

  const std::vector<int64_t> rows = sampled_rows(in, rng);
  const SampledReferences sampled = sampled_references(in, out, rows, full.x_lora_a);
  check("y (sampled rows)", compare(sampled.y, tolerance, [&](int64_t i) {
          return out.y.at({rows[i / c.out_features], i % c.out_features});
        }));
  check("grad_x (sampled rows)", compare(sampled.grad_x, tolerance, [&](int64_t i) {
          return out.grad_x.at({rows[i / c.in_features], i % c.in_features});
        }));
  for (HostTensor* matrix : {&out.y, &out.x_lora_a, &out.grad_x}) {
    const PoisonCount untouched = untouched_elements(*matrix, c.routed_rows());
    CHECK(untouched.poisoned == untouched.total);
  }
  report.print(c.describe() + ", " + std::to_string(rows.size()) + " sampled rows");
  MESSAGE("forward " << forward_ms << " ms, backward " << backward_ms << " ms (GPU, first call); "
                     << "inputs " << prepare_seconds << " s, references and checks "
                     << seconds_since(checking) << " s, all " << seconds_since(started) << " s");
}

}  // namespace

TEST_CASE("2^20 rows and more than 2^31 outputs with [E, N, K] weights: forward and backward "
          "match float64 (MOEQ_LARGE_TESTS=1)") {
  check_large_expert_gemm(large_run(MOEQ_LAYOUT_EXPERT_OUT_IN));
}

TEST_CASE("2^20 rows and more than 2^31 outputs with [E, K, N] nested weights, bfloat16 PEFT LoRA "
          "and the forward's x_lora_a: forward and backward match float64 (MOEQ_LARGE_TESTS=1)") {
  check_large_expert_gemm(large_run(MOEQ_LAYOUT_EXPERT_IN_OUT));
}

#else

TEST_CASE("the large CUDA expert GEMM test needs a CUDA build") {
  MESSAGE("built without CUDA: large CUDA expert GEMM test skipped");
}

#endif  // MOEQ_WITH_CUDA
