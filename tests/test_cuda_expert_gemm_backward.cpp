// The CUDA backward of the expert GEMM (grad_x, grad_lora_a, grad_lora_b): a seeded
// sweep against float64 and the CPU backend, run-to-run bit equality of the LoRA
// gradients, zero gradients for experts without rows, CUDA graph replay, workspace.
#include <doctest/doctest.h>
#include <moeq/moeq.h>

#if MOEQ_WITH_CUDA

#include "support/expert_gemm_backward_case.hpp"
#include "test_cuda_expert_gemm_common.hpp"

using namespace moeq_gpu_test;

namespace {

// A request and how the device call runs: with a caller workspace or the
// stream-ordered pool, on which stream.
struct DeviceGradientRequest : GradientRequest {
  bool caller_workspace = true;
  cudaStream_t stream = nullptr;
};

// One backward call on the device.
class BackwardCall {
 public:
  BackwardCall(ExpertGemmInputs& in, BackwardTensors& host, const DeviceGradientRequest& request)
      : request_(request), host_(host), device_(in), grad_y(host.grad_y) {
    const ExpertGemmCase& c = in.spec;
    if (request.pass_x_lora_a) x_lora_a.assign(host.x_lora_a);
    if (request.grad_x) grad_x.assign(host.grad_x);
    if (request.grad_lora_a) grad_lora_a.assign(host.grad_lora_a);
    if (request.grad_lora_b) grad_lora_b.assign(host.grad_lora_b);
    args.struct_size = sizeof(args);
    args.x = request.pass_x ? device_.x.dl() : nullptr;
    args.weight = device_.weight.q();
    args.weight_layout = c.layout;
    args.group_end = device_.group_end.dl();
    args.lora_a = device_.lora_a.dl();
    args.lora_b = device_.lora_b.dl();
    args.lora_scale = c.lora_scale;
    args.grad_y = grad_y.dl();
    args.x_lora_a = x_lora_a.dl();
    args.grad_x = grad_x.dl();
    args.grad_lora_a = grad_lora_a.dl();
    args.grad_lora_b = grad_lora_b.dl();
    size_t bytes = 0;
    const moeq_status status = moeq_expert_gemm_grad_workspace_size(&args, &bytes);
    INFO(std::string(moeq_last_error()));
    REQUIRE(status == MOEQ_OK);
    workspace_bytes = bytes;
    workspace_.attach(args, bytes, request.caller_workspace);
  }
  moeq_status launch() { return moeq_expert_gemm_lora_backward(&args, request_.stream); }
  void poison() {
    for (auto [host, device] : outputs()) {
      host->poison();
      device->upload(*host);
    }
  }
  void fetch() {
    REQUIRE_CUDA(cudaStreamSynchronize(request_.stream));
    for (auto [host, device] : outputs()) device->download(*host);
  }
  void run() {
    const moeq_status status = launch();
    INFO(std::string(moeq_last_error()));
    REQUIRE(status == MOEQ_OK);
    fetch();
  }

 private:
  std::vector<std::pair<HostTensor*, DeviceTensor*>> outputs() {
    std::vector<std::pair<HostTensor*, DeviceTensor*>> list;
    if (request_.grad_x) list.emplace_back(&host_.grad_x, &grad_x);
    if (request_.grad_lora_a) list.emplace_back(&host_.grad_lora_a, &grad_lora_a);
    if (request_.grad_lora_b) list.emplace_back(&host_.grad_lora_b, &grad_lora_b);
    return list;
  }
  DeviceGradientRequest request_;
  BackwardTensors& host_;
  DeviceInputs device_;
  CallerWorkspace workspace_;

 public:
  DeviceTensor grad_y, x_lora_a, grad_x, grad_lora_a, grad_lora_b;
  moeq_expert_gemm_grad_args args{};
  size_t workspace_bytes = 0;
};

// The CPU backend's gradients into `cpu` (same shapes); false when it reports an error.
bool cpu_backward(ExpertGemmInputs& in, BackwardTensors& host, const GradientRequest& request,
                  BackwardTensors& cpu) {
  cpu.grad_x = host.grad_x;
  cpu.grad_lora_a = host.grad_lora_a;
  cpu.grad_lora_b = host.grad_lora_b;
  const moeq_expert_gemm_grad_args args = request_args(in, host, request, cpu);
  return moeq_expert_gemm_lora_backward(&args, nullptr) == MOEQ_OK;
}

// A random request: at least one gradient; x passed unless nothing needs it.
DeviceGradientRequest random_request(const ExpertGemmCase& spec, std::mt19937_64& rng) {
  DeviceGradientRequest request;
  const bool lora = spec.rank > 0;
  do {
    request.grad_x = rng() % 4 != 0 || !lora;
    request.grad_lora_a = lora && rng() % 3 != 0;
    request.grad_lora_b = lora && rng() % 3 != 0;
  } while (!request.grad_x && !request.grad_lora_a && !request.grad_lora_b);
  request.pass_x_lora_a = lora && rng() % 2 == 0;
  request.x_lora_a_type = rng() % 2 == 0 ? float32_type() : spec.activation;
  request.pass_x = request.grad_lora_a || (request.grad_lora_b && !request.pass_x_lora_a) || rng() % 2 == 0;
  request.caller_workspace = rng() % 4 != 0;
  return request;
}

ExpertGemmCase fixed_case(DLDataType activation, int64_t rank) {
  ExpertGemmCase c;
  c.blocksize = 128;
  c.layout = MOEQ_LAYOUT_EXPERT_IN_OUT;
  c.in_features = 160;
  c.out_features = 256;
  c.rank = rank;
  c.rows_per_expert = {70, 0, 5, 130, 0, 64};
  c.unrouted_rows = 2;
  c.activation = activation;
  c.lora = float32_type();
  c.peft_lora_b = true;
  return c;
}

// Checks the gradients a request asked for against the float64 reference.
void check_gradients(const ExpertGemmCase& spec, const GradientRequest& request,
                     BackwardTensors& t, const ReferenceGradients& reference, double tolerance,
                     SweepReport* report) {
  if (request.grad_x)
    check_routed_rows("grad_x", reference.grad_x, tolerance, t.grad_x, spec, spec.in_features, report);
  if (request.grad_lora_a) {
    const Agreement agreement =
        compare_stack(reference.grad_lora_a, tolerance, t.grad_lora_a, spec.rank, spec.in_features);
    CHECK_MESSAGE(agreement.failures == 0, ("grad_lora_a " + agreement.first_failure));
    if (report) report->add("grad_lora_a", spec.activation, agreement);
  }
  if (request.grad_lora_b) {
    const Agreement agreement =
        compare_stack(reference.grad_lora_b, tolerance, t.grad_lora_b, spec.out_features, spec.rank);
    CHECK_MESSAGE(agreement.failures == 0, ("grad_lora_b " + agreement.first_failure));
    if (report) report->add("grad_lora_b", spec.activation, agreement);
  }
}

// Checks a call's gradients (in `host`) against float64, and against the CPU
// backend when it takes the case (both within the tolerance of float64, so within
// twice it of each other). Returns whether the CPU backend took it.
bool check_backward(ExpertGemmInputs& in, const GradientRequest& request, BackwardTensors& host,
                    SweepReport& report) {
  const ExpertGemmCase& spec = in.spec;
  const double tolerance = gpu_tolerance(spec.activation);
  const ReferenceGradients reference = reference_gradients(in, host, request);
  check_gradients(spec, request, host, reference, tolerance, &report);
  BackwardTensors cpu;
  if (!cpu_backward(in, host, request, cpu)) return false;
  ReferenceGradients cpu_reference = reference;
  const auto take = [](Reference& into, const HostTensor& values) { into.value = dense_values(values); };
  if (request.grad_x) {
    cpu_reference.grad_x.value = dense_values(cpu.grad_x);
    cpu_reference.grad_x.value.resize(reference.grad_x.value.size());
  }
  if (request.grad_lora_a) take(cpu_reference.grad_lora_a, cpu.grad_lora_a);
  if (request.grad_lora_b) take(cpu_reference.grad_lora_b, cpu.grad_lora_b);
  INFO("against the CPU backend");
  check_gradients(spec, request, host, cpu_reference, 2 * tolerance, nullptr);
  return true;
}

// A fixed sweep (run_fixed_sweep) of backwards, grad_x always; the LoRA gradients are
// asked for where lora_gradients(i) and the forward's x_lora_a is passed where
// pass_x_lora_a(i).
template <class MakeCase, class LoraGradients, class PassXLoraA>
void check_fixed_sweep(const std::string& name, uint64_t seed, int default_count, MakeCase make_case,
                       LoraGradients lora_gradients, PassXLoraA pass_x_lora_a) {
  run_fixed_sweep(name, seed, default_count, make_case,
                  [&](int i, const ExpertGemmCase& spec, ExpertGemmInputs& in, std::mt19937_64& rng,
                      SweepReport& report) {
                    DeviceGradientRequest request;
                    request.grad_x = true;
                    request.grad_lora_a = request.grad_lora_b = spec.rank > 0 && lora_gradients(i);
                    request.pass_x = true;
                    request.pass_x_lora_a = spec.rank > 0 && pass_x_lora_a(i);
                    BackwardTensors host = backward_tensors(in, request, rng);
                    BackwardCall call(in, host, request);
                    call.run();
                    CHECK(check_backward(in, request, host, report));
                  });
}

}  // namespace

TEST_CASE("the gradients match float64 and the CPU backend over a seeded sweep of every combination") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(20261130);
  SweepReport report;
  int cpu_compared = 0, cases = case_count(200);
  for (int i = 0; i < cases; ++i) {
    const ExpertGemmCase spec = random_gpu_case(rng);
    CAPTURE(i);
    CAPTURE(spec.describe());
    ExpertGemmInputs in(spec, rng);
    const DeviceGradientRequest request = random_request(spec, rng);
    CAPTURE(request.grad_x);
    CAPTURE(request.grad_lora_a);
    CAPTURE(request.grad_lora_b);
    CAPTURE(request.pass_x_lora_a);
    BackwardTensors host = backward_tensors(in, request, rng);
    BackwardCall call(in, host, request);
    call.run();
    if (check_backward(in, request, host, report)) ++cpu_compared;
  }
  report.print("CUDA backward, " + std::to_string(cases) + " cases, " + std::to_string(cpu_compared) +
               " also compared with the CPU backend");
}

TEST_CASE("training-sized gradients match float64 and the CPU backend on every tile edge") {
  if (skip_without_gpu()) return;
  check_fixed_sweep("CUDA backward, training-sized", 20261131, 16, training_gpu_case,
                    [](int i) { return i % 2 == 0; }, [](int i) { return i % 3 == 0; });
}

TEST_CASE("decode-sized gradients with deep products split their depth and match float64 and the CPU backend") {
  if (skip_without_gpu()) return;
  check_fixed_sweep("CUDA backward, decode-sized with deep products", 20261128, 10, decode_gpu_case,
                    [](int i) { return i % 3 != 2; }, [](int i) { return i % 2 == 0; });
}

TEST_CASE("the LoRA gradients are the same bits run to run, and zero for experts without rows") {
  if (skip_without_gpu()) return;
  for (const DLDataType activation : {float32_type(), float16_type(), bfloat16_type()}) {
    std::mt19937_64 rng(21);
    const ExpertGemmCase spec = fixed_case(activation, 16);
    ExpertGemmInputs in(spec, rng);
    DeviceGradientRequest request;
    BackwardTensors host = backward_tensors(in, request, rng);
    BackwardCall call(in, host, request);
    call.run();
    BackwardTensors first = host;
    for (int run = 0; run < 3; ++run) {
      call.poison();
      call.run();
      CHECK(host.grad_x.bytes() == first.grad_x.bytes());
      CHECK(host.grad_lora_a.bytes() == first.grad_lora_a.bytes());
      CHECK(host.grad_lora_b.bytes() == first.grad_lora_b.bytes());
    }
    for (int64_t e = 0; e < spec.experts(); ++e) {
      if (spec.rows_per_expert[e] != 0) continue;
      for (int64_t j = 0; j < spec.rank; ++j) {
        for (int64_t k = 0; k < spec.in_features; ++k) CHECK(host.grad_lora_a.at({e, j, k}) == 0.0);
        for (int64_t n = 0; n < spec.out_features; ++n) CHECK(host.grad_lora_b.at({e, n, j}) == 0.0);
      }
    }
  }
}

TEST_CASE("a backward captured in a CUDA graph and replayed gives the bits of a direct call") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(22);
  ExpertGemmInputs in(fixed_case(bfloat16_type(), 16), rng);
  cudaStream_t stream;
  REQUIRE_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  DeviceGradientRequest request;
  request.stream = stream;
  BackwardTensors direct_host = backward_tensors(in, request, rng);
  BackwardTensors captured_host = direct_host;
  BackwardCall direct(in, direct_host, request);
  direct.run();
  BackwardCall captured(in, captured_host, request);
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
    CHECK(captured_host.grad_x.bytes() == direct_host.grad_x.bytes());
    CHECK(captured_host.grad_lora_a.bytes() == direct_host.grad_lora_a.bytes());
    CHECK(captured_host.grad_lora_b.bytes() == direct_host.grad_lora_b.bytes());
  }
  REQUIRE_CUDA(cudaGraphExecDestroy(exec));
  REQUIRE_CUDA(cudaGraphDestroy(graph));
  REQUIRE_CUDA(cudaStreamDestroy(stream));
}

TEST_CASE("the backward workspace is O(M x r) and one byte short is MOEQ_ERR_WORKSPACE_TOO_SMALL") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(23);
  ExpertGemmInputs in(fixed_case(float16_type(), 32), rng);
  DeviceGradientRequest request;
  BackwardTensors host = backward_tensors(in, request, rng);
  BackwardCall call(in, host, request);
  // g = dY B and x A^T, float32 [M, r] each, plus the schedule.
  CHECK(call.workspace_bytes <= static_cast<size_t>(2 * in.spec.rows() * in.spec.rank * 4 + 4 * 1024));
  call.args.workspace_bytes = call.workspace_bytes - 1;
  CHECK(call.launch() == MOEQ_ERR_WORKSPACE_TOO_SMALL);
  CHECK(std::string(moeq_last_error()).find("workspace_bytes") != std::string::npos);
}

#else

TEST_CASE("the CUDA expert GEMM backward tests need a CUDA build") {
  MESSAGE("built without CUDA: CUDA expert GEMM backward tests skipped");
}

#endif
