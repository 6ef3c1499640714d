"""moeq for PyTorch: autograd over the expert GEMM with LoRA, a drop-in experts module for
transformers v5 MoE models, in-place quantization of a loaded model's experts, and PEFT
LoRA (target_parameters=["gate_up_proj", "down_proj"]) trained through moeq's kernels."""

from ._experts import MoeqExperts
from ._function import expert_gemm_lora, swiglu
from ._quantize_experts import quantize_experts

__all__ = ["MoeqExperts", "expert_gemm_lora", "quantize_experts", "swiglu"]
