"""moeq: 4-bit (NF4/FP4, bitsandbytes layout) Mixture-of-Experts weights and the per-expert
GEMM with a fused LoRA adapter, on CUDA GPUs and the CPU.

Tensors go in as any object with ``__dlpack__`` (NumPy, PyTorch, JAX, CuPy) and come out
as ``moeq.Tensor`` objects every framework takes without a copy (``torch.from_dlpack``,
``np.from_dlpack``, ...), or in the caller's ``out=`` tensors. Calls are eager (with JAX
too: arrays cross through DLPack, outside jit). CUDA work runs on ``stream=`` (default: the
current PyTorch or CuPy stream of the arguments, else the legacy default stream); the GIL
is released during every library call. ``moeq.torch`` adds PyTorch autograd, a drop-in
experts module for transformers MoE models and PEFT LoRA support.
"""

from . import capi
from ._errors import ArgumentError, Error, OutOfMemoryError, UnsupportedError
from ._expert_gemm import ExpertGemmGrads, expert_gemm_lora, expert_gemm_lora_backward
from ._qtensor import QTensor
from ._quantize import dequantize, quantize
from ._swiglu import swiglu, swiglu_backward
from ._tensor import Tensor, from_dlpack

__version__ = f"{capi.MOEQ_VERSION_MAJOR}.{capi.MOEQ_VERSION_MINOR}.{capi.MOEQ_VERSION_PATCH}"


def build_info():
    """The loaded library's version, backends, CUDA runtime version and GPU architectures."""
    return capi.moeq_build_info()


def cuda_available():
    """Whether the library was built with CUDA and sees at least one GPU."""
    return bool(capi.moeq_cuda_available())


__all__ = [
    "ArgumentError", "Error", "ExpertGemmGrads", "OutOfMemoryError", "QTensor", "Tensor",
    "UnsupportedError", "build_info", "cuda_available", "dequantize", "expert_gemm_lora",
    "expert_gemm_lora_backward", "from_dlpack", "quantize", "swiglu", "swiglu_backward",
]
