// The sections of moeq_cpu_bench; each prints one markdown table.
#pragma once

namespace moeq_bench {

void bench_quantize();
void bench_expert_gemm();

}  // namespace moeq_bench
