// The fields moeq_expert_gemm_args and moeq_expert_gemm_grad_args share, so the
// forward and the backward fill them with one piece of code.
package org.moeq.jni;

/** Implemented by the generated {@link moeq_expert_gemm_args} and {@link moeq_expert_gemm_grad_args}. */
public interface ExpertGemmCommonArgs {
  void setX(DLTensor value);

  void setWeight(moeq_qtensor value);

  void setWeight_layout(int value);

  void setGroup_end(DLTensor value);

  void setLora_a(DLTensor value);

  void setLora_b(DLTensor value);

  void setLora_scale(float value);
}
