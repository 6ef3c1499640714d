// The expert GEMM forward on the CPU in GFLOP/s (2 * rows * N * K), next to
// OpenBLAS sgemm on the same weights already dequantized to float32, called the
// two ways a caller would (BLAS threads inside each expert's sgemm, or OpenMP over
// experts with one BLAS thread each), measured in the same run, interleaved, after
// checking that moeq and sgemm give the same y.
#include "host_buffer.hpp"
#include "sections.hpp"
#include "timing.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

namespace moeq_bench {
namespace {

struct GemmShape {
  const char* name;
  int64_t experts;
  int64_t rows_per_expert;
  int64_t in_features;   // K
  int64_t out_features;  // N
  int32_t layout;
};

constexpr int64_t kLoraRank = 16;
constexpr int kRounds = 7;

// One shape's weights (4-bit and dequantized), routing and LoRA factors, and the
// calls to time on them.
class ExpertGemmBench {
 public:
  explicit ExpertGemmBench(const GemmShape& shape)
      : shape_(shape),
        rows_(shape.experts * shape.rows_per_expert),
        weight_shape_(
            shape.layout == MOEQ_LAYOUT_EXPERT_OUT_IN
                ? std::vector<int64_t>{shape.experts, shape.out_features, shape.in_features}
                : std::vector<int64_t>{shape.experts, shape.in_features, shape.out_features}),
        quantized_(MOEQ_FORMAT_NF4, 64, false, weight_shape_),
        dequantized_(float32_type(), weight_shape_),
        group_end_(int64_type(), {shape.experts}),
        lora_a_(float32_type(), {shape.experts, kLoraRank, shape.in_features}),
        peft_lora_b_(float32_type(), {shape.out_features, kLoraRank * shape.experts}) {
    std::mt19937_64 rng(7);
    {
      HostBuffer source(float32_type(), weight_shape_);
      source.fill_normal(rng);
      expect_ok(
          moeq_quantize(source.dl(), &quantized_.config(), quantized_.q(), nullptr, 0, nullptr),
          "moeq_quantize");
    }
    expect_ok(moeq_dequantize(quantized_.q(), dequantized_.dl(), nullptr), "moeq_dequantize");
    for (int64_t e = 0; e < shape.experts; ++e)
      group_end_.as<int64_t>()[e] = (e + 1) * shape.rows_per_expert;
    lora_a_.fill_normal(rng);
    peft_lora_b_.fill_normal(rng);
    // PEFT's lora_B.weight [N, r*E] seen as [E, N, r]: strides (1, r*E, E).
    lora_b_view_ = *peft_lora_b_.dl();
    lora_b_view_.ndim = 3;
    lora_b_view_.shape = lora_b_shape_;
    lora_b_view_.strides = lora_b_strides_;
  }

  int64_t rows() const { return rows_; }
  double flops() const {
    return 2.0 * static_cast<double>(rows_) * static_cast<double>(shape_.in_features) *
           static_cast<double>(shape_.out_features);
  }

  // A moeq_expert_gemm_lora call on x (float32 or bfloat16) into y of x's dtype.
  std::function<void()> moeq(HostBuffer& x, HostBuffer& y, bool lora) {
    moeq_expert_gemm_args args{};
    args.struct_size = sizeof(args);
    args.x = x.dl();
    args.weight = quantized_.q();
    args.weight_layout = shape_.layout;
    args.group_end = group_end_.dl();
    args.lora_a = lora ? lora_a_.dl() : nullptr;
    args.lora_b = lora ? &lora_b_view_ : nullptr;
    args.lora_scale = 0.5f;
    args.y = y.dl();
    return [args] { expect_ok(moeq_expert_gemm_lora(&args, nullptr), "moeq_expert_gemm_lora"); };
  }

  // One sgemm per expert with OpenBLAS's own threads inside it.
  std::function<void()> sgemm_blas_threads(HostBuffer& x, HostBuffer& y) {
    return [this, &x, &y] {
      for (int64_t e = 0; e < shape_.experts; ++e) sgemm_expert(e, x, y);
    };
  }

  // Experts spread over OpenMP threads; OpenBLAS runs single-threaded inside a
  // parallel region.
  std::function<void()> sgemm_over_experts(HostBuffer& x, HostBuffer& y) {
    return [this, &x, &y] {
#pragma omp parallel for schedule(dynamic)
      for (int64_t e = 0; e < shape_.experts; ++e) sgemm_expert(e, x, y);
    };
  }

 private:
  void sgemm_expert(int64_t e, HostBuffer& x, HostBuffer& y) {
    const int64_t rows = shape_.rows_per_expert, k = shape_.in_features, n = shape_.out_features;
    const bool out_in = shape_.layout == MOEQ_LAYOUT_EXPERT_OUT_IN;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, out_in ? CblasTrans : CblasNoTrans,
                static_cast<int>(rows), static_cast<int>(n), static_cast<int>(k), 1.0f,
                x.as<float>() + e * rows * k, static_cast<int>(k),
                dequantized_.as<float>() + e * n * k, static_cast<int>(out_in ? k : n), 0.0f,
                y.as<float>() + e * rows * n, static_cast<int>(n));
  }

  GemmShape shape_;
  int64_t rows_;
  std::vector<int64_t> weight_shape_;
  QuantizedBuffer quantized_;
  HostBuffer dequantized_, group_end_, lora_a_, peft_lora_b_;
  int64_t lora_b_shape_[3] = {shape_.experts, shape_.out_features, kLoraRank};
  int64_t lora_b_strides_[3] = {1, kLoraRank* shape_.experts, shape_.experts};
  DLTensor lora_b_view_{};
};

double relative_difference(HostBuffer& actual, HostBuffer& expected) {
  double difference = 0.0, reference = 0.0;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    const double a = actual.as<float>()[i], b = expected.as<float>()[i];
    difference += (a - b) * (a - b);
    reference += b * b;
  }
  return std::sqrt(difference / reference);
}

}  // namespace

void bench_expert_gemm() {
  // Scaled-down expert projections: Qwen3-30B-A3B (gate_up [E, 2I, H], down
  // [E, H, I]), GLM-4.7-Flash, gpt-oss ([E, in, out]), and a decode-sized batch.
  const GemmShape shapes[] = {
      {"Qwen3 gate_up", 32, 128, 2048, 1536, MOEQ_LAYOUT_EXPERT_OUT_IN},
      {"Qwen3 down", 32, 128, 768, 2048, MOEQ_LAYOUT_EXPERT_OUT_IN},
      {"GLM gate_up", 8, 512, 2048, 1536, MOEQ_LAYOUT_EXPERT_OUT_IN},
      {"gpt-oss [E,K,N]", 8, 256, 2048, 1536, MOEQ_LAYOUT_EXPERT_IN_OUT},
      {"many experts", 64, 32, 2048, 768, MOEQ_LAYOUT_EXPERT_OUT_IN},
      {"decode", 64, 4, 2048, 768, MOEQ_LAYOUT_EXPERT_OUT_IN},
  };
  std::printf(
      "### expert GEMM forward, NF4 blocksize 64 weights, GFLOP/s\n\n"
      "sgemm: OpenBLAS on the weights already dequantized to float32, float32 x; 'BLAS threads' "
      "= one threaded sgemm per expert, 'over experts' = OpenMP over experts, single-threaded "
      "sgemm each. %% = moeq over the faster sgemm. LoRA: r = 16, float32, PEFT's strided "
      "lora_B. rel. diff. y: moeq (float32 x) against sgemm.\n\n");
  std::printf(
      "| shape | E | rows/expert | K | N | sgemm BLAS threads | sgemm over experts "
      "| moeq f32 x | %% | moeq bf16 x | %% | moeq bf16 x + LoRA | %% | rel. diff. y |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const GemmShape& shape : shapes) {
    ExpertGemmBench bench(shape);
    std::mt19937_64 rng(11);
    HostBuffer x(float32_type(), {bench.rows(), shape.in_features});
    HostBuffer x_bf16(bfloat16_type(), {bench.rows(), shape.in_features});
    HostBuffer y_sgemm(float32_type(), {bench.rows(), shape.out_features});
    HostBuffer y(float32_type(), {bench.rows(), shape.out_features});
    HostBuffer y_bf16(bfloat16_type(), {bench.rows(), shape.out_features});
    x.fill_normal(rng);
    x_bf16.fill_normal(rng);

    // Checked before timing: the same x and weights give the same y.
    bench.sgemm_blas_threads(x, y_sgemm)();
    bench.moeq(x, y, false)();
    const double difference = relative_difference(y, y_sgemm);

    const std::vector<double> seconds = interleaved_median_seconds(
        kRounds, {bench.sgemm_blas_threads(x, y_sgemm), bench.sgemm_over_experts(x, y_sgemm),
                  bench.moeq(x, y, false), bench.moeq(x_bf16, y_bf16, false),
                  bench.moeq(x_bf16, y_bf16, true)});
    std::vector<double> gflops;
    for (double s : seconds) gflops.push_back(bench.flops() / s / 1e9);
    const double sgemm = std::max(gflops[0], gflops[1]);
    std::printf(
        "| %s | %lld | %lld | %lld | %lld | %.1f | %.1f | %.1f | %.0f%% | %.1f | %.0f%% "
        "| %.1f | %.0f%% | %.1e |\n",
        shape.name, static_cast<long long>(shape.experts),
        static_cast<long long>(shape.rows_per_expert), static_cast<long long>(shape.in_features),
        static_cast<long long>(shape.out_features), gflops[0], gflops[1], gflops[2],
        100.0 * gflops[2] / sgemm, gflops[3], 100.0 * gflops[3] / sgemm, gflops[4],
        100.0 * gflops[4] / sgemm, difference);
    std::fflush(stdout);
  }
}

}  // namespace moeq_bench
