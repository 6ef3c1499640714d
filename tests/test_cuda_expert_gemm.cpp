// The CUDA forward of moeq_expert_gemm_lora: a seeded sweep against float64 and the
// CPU backend, malformed routing, CUDA graph replay, concurrent streams, workspace
// and device memory. Skips where no GPU is visible.
#include <doctest/doctest.h>
#include <moeq/moeq.h>

#if MOEQ_WITH_CUDA

#include "test_cuda_expert_gemm_common.hpp"

#include <memory>

using namespace moeq_gpu_test;

namespace {

struct ForwardOptions {
  bool want_x_lora_a = false;
  DLDataType x_lora_a_type = float32_type();
  bool caller_workspace = true;
  cudaStream_t stream = nullptr;
};

// One forward call on the device: inputs, poisoned outputs, workspace, arguments.
class ForwardCall {
 public:
  ForwardCall(ExpertGemmInputs& in, const ForwardOptions& options)
      : spec_(in.spec), options_(options), device_(in),
        y(activation_tensor(spec_.activation, spec_.rows(), spec_.out_features, spec_.row_padding)),
        y_device(y) {
    if (options.want_x_lora_a) {
      x_lora_a = HostTensor(options.x_lora_a_type, {spec_.rows(), spec_.rank});
      x_lora_a_device.assign(x_lora_a);
    }
    args.struct_size = sizeof(args);
    args.x = device_.x.dl();
    args.weight = device_.weight.q();
    args.weight_layout = spec_.layout;
    args.group_end = device_.group_end.dl();
    args.lora_a = device_.lora_a.dl();
    args.lora_b = device_.lora_b.dl();
    args.lora_scale = spec_.lora_scale;
    args.y = y_device.dl();
    args.x_lora_a = x_lora_a_device.dl();
    size_t bytes = 0;
    REQUIRE(moeq_expert_gemm_workspace_size(&args, &bytes) == MOEQ_OK);
    workspace_bytes = bytes;
    workspace_.attach(args, bytes, options.caller_workspace);
  }
  // Enqueues the call on the stream; no synchronisation.
  moeq_status launch() { return moeq_expert_gemm_lora(&args, options_.stream); }
  void poison() {
    y.poison();
    y_device.upload(y);
    if (options_.want_x_lora_a) {
      x_lora_a.poison();
      x_lora_a_device.upload(x_lora_a);
    }
  }
  // Waits for the stream and copies the outputs back into y and x_lora_a.
  void fetch() {
    REQUIRE_CUDA(cudaStreamSynchronize(options_.stream));
    y_device.download(y);
    if (options_.want_x_lora_a) x_lora_a_device.download(x_lora_a);
  }
  void run() {
    const moeq_status status = launch();
    INFO(std::string(moeq_last_error()));
    REQUIRE(status == MOEQ_OK);
    fetch();
  }

 private:
  ExpertGemmCase spec_;
  ForwardOptions options_;
  DeviceInputs device_;
  CallerWorkspace workspace_;

 public:
  HostTensor y, x_lora_a;
  DeviceTensor y_device, x_lora_a_device;
  moeq_expert_gemm_args args{};
  size_t workspace_bytes = 0;
};

// The CPU backend's y for the same inputs; false when the CPU path reports an error.
bool cpu_forward(ExpertGemmInputs& in, HostTensor& y) {
  const ExpertGemmCase& c = in.spec;
  y = activation_tensor(c.activation, c.rows(), c.out_features, c.row_padding);
  const moeq_expert_gemm_args args = forward_args(in, y.dl());
  return moeq_expert_gemm_lora(&args, nullptr) == MOEQ_OK;
}

bool same_bytes(HostTensor& a, HostTensor& b) { return a.bytes() == b.bytes(); }

ExpertGemmCase fixed_case(DLDataType activation, int64_t rank) {
  ExpertGemmCase c;
  c.blocksize = 64;
  c.nested = true;
  c.in_features = 256;
  c.out_features = 192;
  c.rank = rank;
  c.rows_per_expert = {70, 0, 5, 130, 1, 64};
  c.unrouted_rows = 3;
  c.activation = activation;
  c.lora = float32_type();
  c.peft_lora_b = true;
  return c;
}

// Checks a call's y (and x_lora_a when asked) against float64, that rows past the
// routed ones keep their poison, and y against the CPU backend when it takes the
// case (GPU and CPU each within the tolerance of float64, so within twice it of
// each other). Returns whether the CPU backend took it.
bool check_forward(ExpertGemmInputs& in, const ForwardOptions& options, ForwardCall& call, SweepReport& report) {
  const ExpertGemmCase& spec = in.spec;
  const double tolerance = gpu_tolerance(spec.activation);
  const Reference y = reference_forward(in);
  check_routed_rows("y", y, tolerance, call.y, spec, spec.out_features, &report);
  if (options.want_x_lora_a)
    check_routed_rows("x_lora_a", reference_x_lora_a(in), tolerance, call.x_lora_a, spec, spec.rank, &report);
  HostTensor cpu_y;
  if (!cpu_forward(in, cpu_y)) return false;
  Reference cpu_reference = y;
  for (int64_t r = 0; r < spec.routed_rows(); ++r)
    for (int64_t n = 0; n < spec.out_features; ++n) cpu_reference.value[r * spec.out_features + n] = cpu_y.at({r, n});
  const Agreement agreement = compare_matrix(cpu_reference, 2 * tolerance, call.y, spec.out_features);
  CHECK_MESSAGE(agreement.failures == 0, ("against the CPU backend: " + agreement.first_failure));
  return true;
}

// A fixed sweep (run_fixed_sweep) of forwards; the caller keeps x_lora_a where
// keep_x_lora_a(i).
template <class MakeCase, class KeepXLoraA>
void check_fixed_sweep(const std::string& name, uint64_t seed, int default_count, MakeCase make_case,
                       KeepXLoraA keep_x_lora_a) {
  run_fixed_sweep(name, seed, default_count, make_case,
                  [&](int i, const ExpertGemmCase& spec, ExpertGemmInputs& in, std::mt19937_64&, SweepReport& report) {
                    ForwardOptions options;
                    options.want_x_lora_a = spec.rank > 0 && keep_x_lora_a(i);
                    ForwardCall call(in, options);
                    call.run();
                    CHECK(check_forward(in, options, call, report));
                  });
}

}  // namespace

TEST_CASE("y and x_lora_a match float64 and the CPU backend over a seeded sweep of every combination") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(20261129);
  SweepReport report;
  int cpu_compared = 0, cases = case_count(300);
  for (int i = 0; i < cases; ++i) {
    const ExpertGemmCase spec = random_gpu_case(rng);
    CAPTURE(i);
    CAPTURE(spec.describe());
    ExpertGemmInputs in(spec, rng);
    ForwardOptions options;
    options.want_x_lora_a = spec.rank > 0 && rng() % 2 == 0;
    options.x_lora_a_type = rng() % 2 == 0 ? float32_type() : spec.activation;
    options.caller_workspace = rng() % 4 != 0;
    ForwardCall call(in, options);
    call.run();
    if (check_forward(in, options, call, report)) ++cpu_compared;
  }
  report.print("CUDA forward, " + std::to_string(cases) + " cases, " + std::to_string(cpu_compared) +
               " also compared with the CPU backend");
}

TEST_CASE("training-sized problems match float64 and the CPU backend on every tile edge") {
  if (skip_without_gpu()) return;
  check_fixed_sweep("CUDA forward, training-sized", 20261130, 16, training_gpu_case,
                    [](int i) { return i % 3 == 0; });
}

TEST_CASE("decode-sized problems with deep products split their depth and match float64 and the CPU backend") {
  if (skip_without_gpu()) return;
  check_fixed_sweep("CUDA forward, decode-sized with deep products", 20261129, 10, decode_gpu_case,
                    [](int i) { return i % 2 == 0; });
}

TEST_CASE("group_end that is negative, decreases or passes M is clamped: no row is written twice or out of range") {
  if (skip_without_gpu()) return;
  // Effective rows after clamping to [0, M] and a running maximum, and the raw ends.
  struct Routing {
    std::vector<int64_t> rows_per_expert;
    int64_t unrouted;
    std::vector<int64_t> raw_group_end;
  };
  const Routing routings[3] = {
      {{0, 10, 0, 40, 0}, 0, {-4, 10, 6, 70, 20}},
      {{5, 0, 15, 0}, 20, {5, 3, 20, 2}},
      {{0, 0, 0}, 9, {-1, -7, 0}},
  };
  for (const Routing& routing : routings) {
    ExpertGemmCase spec = fixed_case(bfloat16_type(), 8);
    spec.rows_per_expert = routing.rows_per_expert;
    spec.unrouted_rows = routing.unrouted;
    spec.group_end_int64 = routing.raw_group_end[0] < 0;
    CAPTURE(spec.describe());
    std::mt19937_64 rng(7);
    ExpertGemmInputs in(spec, rng);
    for (size_t e = 0; e < routing.raw_group_end.size(); ++e)
      in.group_end.set_flat(static_cast<int64_t>(e), static_cast<double>(routing.raw_group_end[e]));
    ForwardCall call(in, ForwardOptions{true, float32_type(), true, nullptr});
    call.run();
    check_routed_rows("y", reference_forward(in), gpu_tolerance(spec.activation), call.y, spec, spec.out_features,
                      nullptr);
    const PoisonCount untouched_x_lora_a = untouched_elements(call.x_lora_a, spec.routed_rows());
    CHECK(untouched_x_lora_a.poisoned == untouched_x_lora_a.total);
  }
}

TEST_CASE("the same call twice gives the same bits") {
  if (skip_without_gpu()) return;
  for (const DLDataType activation : {float32_type(), float16_type(), bfloat16_type()}) {
    std::mt19937_64 rng(11);
    ExpertGemmInputs in(fixed_case(activation, 16), rng);
    ForwardCall call(in, ForwardOptions{true, float32_type(), true, nullptr});
    call.run();
    HostTensor first_y = call.y, first_x_lora_a = call.x_lora_a;
    call.poison();
    call.run();
    CHECK(same_bytes(first_y, call.y));
    CHECK(same_bytes(first_x_lora_a, call.x_lora_a));
  }
}

TEST_CASE("a forward captured in a CUDA graph and replayed gives the bits of a direct call") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(12);
  ExpertGemmInputs in(fixed_case(bfloat16_type(), 16), rng);
  cudaStream_t stream;
  REQUIRE_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  ForwardCall direct(in, ForwardOptions{true, float32_type(), true, stream});
  direct.run();
  ForwardCall captured(in, ForwardOptions{true, float32_type(), true, stream});
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  REQUIRE_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const moeq_status status = captured.launch();
  INFO(std::string(moeq_last_error()));
  REQUIRE_CUDA(cudaStreamEndCapture(stream, &graph));
  REQUIRE(status == MOEQ_OK);
  REQUIRE_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  for (int replay = 0; replay < 2; ++replay) {
    captured.poison();
    REQUIRE_CUDA(cudaGraphLaunch(exec, stream));
    captured.fetch();
    CHECK(same_bytes(direct.y, captured.y));
    CHECK(same_bytes(direct.x_lora_a, captured.x_lora_a));
  }
  REQUIRE_CUDA(cudaGraphExecDestroy(exec));
  REQUIRE_CUDA(cudaGraphDestroy(graph));
  REQUIRE_CUDA(cudaStreamDestroy(stream));
}

TEST_CASE("calls on several streams at once give the results of serial calls") {
  if (skip_without_gpu()) return;
  constexpr int kStreams = 4;
  cudaStream_t streams[kStreams];
  std::vector<std::unique_ptr<ExpertGemmInputs>> inputs;
  std::vector<std::unique_ptr<ForwardCall>> serial, concurrent;
  const DLDataType activations[kStreams] = {bfloat16_type(), float16_type(), float32_type(), bfloat16_type()};
  for (int s = 0; s < kStreams; ++s) {
    REQUIRE_CUDA(cudaStreamCreateWithFlags(&streams[s], cudaStreamNonBlocking));
    std::mt19937_64 rng(100 + s);
    inputs.push_back(std::make_unique<ExpertGemmInputs>(fixed_case(activations[s], 4 + 12 * s), rng));
    serial.push_back(std::make_unique<ForwardCall>(*inputs.back(), ForwardOptions{true, float32_type(), true, streams[s]}));
    serial.back()->run();
    concurrent.push_back(std::make_unique<ForwardCall>(*inputs.back(), ForwardOptions{true, float32_type(), s % 2 == 0, streams[s]}));
  }
  for (int round = 0; round < 3; ++round) {
    for (int s = 0; s < kStreams; ++s) {
      concurrent[s]->poison();
      REQUIRE(concurrent[s]->launch() == MOEQ_OK);
    }
    for (int s = 0; s < kStreams; ++s) {
      concurrent[s]->fetch();
      CHECK(same_bytes(serial[s]->y, concurrent[s]->y));
      CHECK(same_bytes(serial[s]->x_lora_a, concurrent[s]->x_lora_a));
    }
  }
  for (cudaStream_t stream : streams) REQUIRE_CUDA(cudaStreamDestroy(stream));
}

TEST_CASE("with a caller workspace a call allocates no device memory; without one it uses the stream-ordered pool") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(13);
  ExpertGemmInputs in(fixed_case(bfloat16_type(), 64), rng);
  ForwardCall with_workspace(in, ForwardOptions{false, float32_type(), true, nullptr});
  ForwardCall without_workspace(in, ForwardOptions{false, float32_type(), false, nullptr});
  with_workspace.run();  // loads the kernels first
  without_workspace.run();
  // O(M x r) plus the schedule: the x_lora_a float32 scratch and small arrays.
  CHECK(with_workspace.workspace_bytes <=
        static_cast<size_t>(in.spec.rows() * in.spec.rank * 4 + 3 * 1024));

  cudaMemPool_t pool;
  REQUIRE_CUDA(cudaDeviceGetDefaultMemPool(&pool, 0));
  const auto reset_high_water = [&] {
    uint64_t zero = 0;
    REQUIRE_CUDA(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero));
  };
  const auto high_water = [&] {
    uint64_t bytes = 0;
    REQUIRE_CUDA(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &bytes));
    return bytes;
  };
  REQUIRE_CUDA(cudaDeviceSynchronize());
  reset_high_water();
  const uint64_t pool_before = high_water();
  size_t free_before = 0, free_after = 0, total = 0;
  REQUIRE_CUDA(cudaMemGetInfo(&free_before, &total));
  with_workspace.run();
  REQUIRE_CUDA(cudaMemGetInfo(&free_after, &total));
  CHECK(free_after == free_before);
  CHECK(high_water() == pool_before);

  reset_high_water();
  without_workspace.run();
  CHECK(high_water() >= pool_before + with_workspace.workspace_bytes);
}

TEST_CASE("a workspace one byte short is MOEQ_ERR_WORKSPACE_TOO_SMALL and names workspace_bytes") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(14);
  ExpertGemmInputs in(fixed_case(float16_type(), 16), rng);
  ForwardCall call(in, ForwardOptions{false, float32_type(), true, nullptr});
  call.args.workspace_bytes = call.workspace_bytes - 1;
  CHECK(call.launch() == MOEQ_ERR_WORKSPACE_TOO_SMALL);
  CHECK(std::string(moeq_last_error()).find("workspace_bytes") != std::string::npos);
  call.fetch();
  const PoisonCount untouched = untouched_elements(call.y, 0);
  CHECK(untouched.poisoned == untouched.total);
}

#else

TEST_CASE("the CUDA expert GEMM tests need a CUDA build") {
  MESSAGE("built without CUDA: CUDA expert GEMM tests skipped");
}

#endif
