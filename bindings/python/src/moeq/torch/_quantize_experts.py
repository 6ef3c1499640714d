"""quantize_experts: converts a loaded transformers MoE model's experts to MoeqExperts in place."""

import functools

from torch import nn

from ._experts import MoeqExperts
from ._peft import route_peft_wrappers


def _is_experts_module(module):
    return not isinstance(module, MoeqExperts) and all(
        isinstance(getattr(module, name, None), nn.Parameter) and getattr(module, name).ndim == 3
        for name in ("gate_up_proj", "down_proj"))


def quantize_experts(model, format="nf4", blocksize=64, double_quant=False):
    """Replaces every experts module of `model` (3-D gate_up_proj / down_proj parameters, as
    transformers v5 stores them) by a MoeqExperts holding its weights in 4 bits, one module
    at a time so the dense weights are freed as it goes. Quantization runs where the weights
    are (GPU or CPU). Returns `model`; PEFT LoRA may be added afterwards with
    target_parameters=["gate_up_proj", "down_proj"]."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _is_experts_module(child):
                setattr(parent, name, MoeqExperts(child, format, blocksize, double_quant))
                parent.register_forward_pre_hook(functools.partial(route_peft_wrappers,
                                                                   attribute=name))
    return model
