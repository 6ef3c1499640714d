// moeq_cpu_bench: CPU throughput of quantize, dequantize and the expert GEMM, the
// GEMM next to OpenBLAS sgemm on already-dequantized weights in the same run.
#include "sections.hpp"

#include <moeq/moeq.h>
#include <omp.h>

#include <cstdio>

int main() {
  std::printf("%s; %d OpenMP threads\n\n", moeq_build_info(), omp_get_max_threads());
  moeq_bench::bench_quantize();
  std::printf("\n");
  moeq_bench::bench_expert_gemm();
  return 0;
}
