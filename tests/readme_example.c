#include <moeq/moeq.h>
#include <stdio.h>
#include <stdlib.h>

/* Quantize a [2 experts, 64 out, 128 in] weight to NF4 and read it back. */
int main(void) {
  int64_t shape[3] = {2, 64, 128};
  int64_t numel = 2 * 64 * 128;
  float* weight = malloc(sizeof(float) * numel);
  float* restored = malloc(sizeof(float) * numel);
  for (int64_t i = 0; i < numel; ++i) weight[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;

  moeq_quant_config config = {sizeof(moeq_quant_config), MOEQ_FORMAT_NF4, 64, 0};
  moeq_quant_layout layout = {sizeof(moeq_quant_layout)};
  if (moeq_quantized_layout(&config, 3, shape, &layout) != MOEQ_OK) return 1;

  uint8_t* packed = malloc(layout.packed_bytes);
  float* absmax = malloc(sizeof(float) * layout.absmax_count);
  DLDevice cpu = {kDLCPU, 0};
  DLTensor input = {weight, cpu, 3, {kDLFloat, 32, 1}, shape, NULL, 0};
  DLTensor output = {restored, cpu, 3, {kDLFloat, 32, 1}, shape, NULL, 0};
  moeq_qtensor q = {sizeof(moeq_qtensor)};
  q.packed = (DLTensor){packed, cpu, 1, {kDLUInt, 8, 1}, &layout.packed_bytes, NULL, 0};
  q.absmax = (DLTensor){absmax, cpu, 1, {kDLFloat, 32, 1}, &layout.absmax_count, NULL, 0};

  moeq_status status = moeq_quantize(&input, &config, &q, NULL, 0, NULL);
  if (status == MOEQ_OK) status = moeq_dequantize(&q, &output, NULL);
  if (status != MOEQ_OK) {
    fprintf(stderr, "%s: %s\n", moeq_status_name(status), moeq_last_error());
    return 1;
  }
  double worst = 0.0;
  for (int64_t i = 0; i < numel; ++i) {
    double error = weight[i] > restored[i] ? weight[i] - restored[i] : restored[i] - weight[i];
    if (error > worst) worst = error;
  }
  printf("%lld bytes -> %lld bytes, largest error %.4f\n", (long long)(numel * 4),
         (long long)(layout.packed_bytes + 4 * layout.absmax_count), worst);
  free(weight); free(restored); free(packed); free(absmax);
  return worst < 0.2 ? 0 : 1;
}
