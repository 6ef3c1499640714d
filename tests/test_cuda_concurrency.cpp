// Concurrency on the GPU: 8 threads, each on its own CUDA stream, calling every
// operation at once for a few seconds get the results of serial calls on the
// default stream bit for bit, and each thread's moeq_last_error() stays its own.
// Skipped where no GPU is visible (as in CI).
#include <doctest/doctest.h>
#include <moeq/moeq.h>

#if MOEQ_WITH_CUDA

#include "support/concurrent_calls.hpp"
#include "support/every_op.hpp"
#include "test_cuda_expert_gemm_common.hpp"

#include <memory>
#include <string>

using namespace moeq_gpu_test;

namespace {

constexpr size_t kOps = sizeof kEveryOp / sizeof kEveryOp[0];

// Device outputs made from poisoned host tensors, read back as one byte string.
struct DeviceOutputs {
  std::vector<HostTensor> host;
  std::vector<std::unique_ptr<DeviceTensor>> device;
  DLTensor* add(HostTensor tensor) {
    host.push_back(std::move(tensor));
    device.push_back(std::make_unique<DeviceTensor>(host.back()));
    return device.back()->dl();
  }
  std::vector<uint8_t> bytes() {
    std::vector<uint8_t> all;
    for (size_t i = 0; i < host.size(); ++i) {
      device[i]->download(host[i]);
      all.insert(all.end(), host[i].bytes().begin(), host[i].bytes().end());
    }
    return all;
  }
};

// The workload of tests/support/every_op.hpp on the device.
class GpuOps {
 public:
  explicit GpuOps(uint64_t seed)
      : rng_(seed), gemm_(every_op_case(), rng_), quantize_host_(bfloat16_type(), {1024, 1024}) {
    quantize_host_.fill_normal(rng_);
    quantize_input_.assign(quantize_host_);
    const ExpertGemmCase& c = gemm_.spec;
    grad_y_host_ = activation_tensor(c.activation, c.rows(), c.out_features, 0);
    grad_y_host_.fill_normal(rng_);
    grad_y_.assign(grad_y_host_);
    swiglu_grad_host_ = activation_tensor(c.activation, c.rows(), c.out_features / 2, 0);
    swiglu_grad_host_.fill_normal(rng_);
    swiglu_grad_.assign(swiglu_grad_host_);
    inputs_ = std::make_unique<DeviceInputs>(gemm_);
  }

  // Runs `op` on `stream` into fresh device outputs and returns their bytes.
  moeq_status run(Op op, cudaStream_t stream, std::vector<uint8_t>& bytes) {
    const ExpertGemmCase& c = gemm_.spec;
    DeviceOutputs out;
    moeq_status status = MOEQ_ERR_INTERNAL;
    switch (op) {
      case Op::Quantize: {
        HostQTensor layout(MOEQ_FORMAT_NF4, 64, true, {1024, 1024}, bfloat16_type());
        moeq_qtensor q = *layout.q();
        q.packed = *out.add(layout.packed);
        q.absmax = *out.add(layout.absmax);
        q.nested_absmax = *out.add(layout.nested_absmax);
        q.nested_code = *out.add(layout.nested_code);
        q.nested_offset = *out.add(layout.nested_offset);
        const moeq_quant_config config = layout.config();
        status = moeq_quantize(quantize_input_.dl(), &config, &q, nullptr, 0, stream);
        break;
      }
      case Op::Dequantize:
        status = moeq_dequantize(inputs_->weight.q(),
                                 out.add(HostTensor(bfloat16_type(), c.weight_shape())), stream);
        break;
      case Op::Forward: {
        moeq_expert_gemm_args args = forward_args(
            gemm_, out.add(activation_tensor(c.activation, c.rows(), c.out_features, 0)),
            out.add(HostTensor(float32_type(), {c.rows(), c.rank})));
        args.x = inputs_->x.dl();
        args.weight = inputs_->weight.q();
        args.group_end = inputs_->group_end.dl();
        args.lora_a = inputs_->lora_a.dl();
        args.lora_b = inputs_->lora_b.dl();
        status = moeq_expert_gemm_lora(&args, stream);
        break;
      }
      case Op::Backward: {
        moeq_expert_gemm_grad_args args = backward_args(
            gemm_, grad_y_.dl(),
            out.add(activation_tensor(c.activation, c.rows(), c.in_features, 0)),
            out.add(HostTensor(c.lora, {c.experts(), c.rank, c.in_features})),
            out.add(lora_b_tensor(c.lora, c.experts(), c.out_features, c.rank, c.peft_lora_b)));
        args.x = inputs_->x.dl();
        args.weight = inputs_->weight.q();
        args.group_end = inputs_->group_end.dl();
        args.lora_a = inputs_->lora_a.dl();
        args.lora_b = inputs_->lora_b.dl();
        status = moeq_expert_gemm_lora_backward(&args, stream);
        break;
      }
      case Op::Swiglu:
        status = moeq_swiglu(nullptr, grad_y_.dl(),
                             out.add(activation_tensor(c.activation, c.rows(), c.out_features / 2, 0)), stream);
        break;
      case Op::SwigluBackward: {
        const moeq_swiglu_config config = every_op_swiglu_backward_config();
        status = moeq_swiglu_backward(&config, grad_y_.dl(), swiglu_grad_.dl(),
                                      out.add(activation_tensor(c.activation, c.rows(), c.out_features, 0)), stream);
        break;
      }
    }
    if (cudaStreamSynchronize(stream) != cudaSuccess) return MOEQ_ERR_CUDA;
    bytes = out.bytes();
    return status;
  }

 private:
  std::mt19937_64 rng_;
  ExpertGemmInputs gemm_;
  HostTensor quantize_host_, grad_y_host_, swiglu_grad_host_;
  DeviceTensor quantize_input_, grad_y_, swiglu_grad_;
  std::unique_ptr<DeviceInputs> inputs_;
};

// A message no other thread's bad call gives: a blocksize of its own.
moeq_status bad_call(int thread) {
  const moeq_quant_config config{sizeof(moeq_quant_config), MOEQ_FORMAT_NF4, 100 + thread, 0};
  const int64_t shape[1] = {64};
  moeq_quant_layout layout{};
  layout.struct_size = sizeof(layout);
  return moeq_quantized_layout(&config, 1, shape, &layout);
}

// Each thread's own non-blocking stream, for as long as the thread runs.
class StreamWorker {
 public:
  explicit StreamWorker(GpuOps& ops) : ops_(ops) {
    REQUIRE_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~StreamWorker() { cudaStreamDestroy(stream_); }
  StreamWorker(StreamWorker&& other) noexcept : ops_(other.ops_), stream_(other.stream_) {
    other.stream_ = nullptr;
  }
  StreamWorker(const StreamWorker&) = delete;
  StreamWorker& operator=(const StreamWorker&) = delete;
  moeq_status operator()(size_t op, std::vector<uint8_t>& bytes) {
    return ops_.run(kEveryOp[op], stream_, bytes);
  }

 private:
  GpuOps& ops_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

TEST_CASE("8 threads on their own CUDA streams get the serial results and their own errors") {
  if (skip_without_gpu()) return;
  GpuOps ops(99);
  std::vector<std::vector<uint8_t>> serial(kOps);
  for (size_t i = 0; i < kOps; ++i) REQUIRE(ops.run(kEveryOp[i], nullptr, serial[i]) == MOEQ_OK);
  const auto make_worker = [&](int) { return StreamWorker(ops); };
  std::vector<std::string> names;
  for (Op op : kEveryOp) names.push_back(op_name(op));
  check_tallies(run_concurrently(8, serial, make_worker, bad_call), names);
}

#else

TEST_CASE("the CUDA concurrency test needs a CUDA build") {
  MESSAGE("built without CUDA: CUDA concurrency test skipped");
}

#endif  // MOEQ_WITH_CUDA
