"""MoeqExperts: a transformers v5 experts module (3-D gate_up_proj / down_proj) on 4-bit weights."""

import torch
from torch import nn

import moeq

from ._function import expert_gemm_lora, swiglu
from ._peft import peft_lora_views

PROJECTIONS = ("gate_up_proj", "down_proj")
QUANTIZED_FIELDS = ("packed", "absmax", "nested_absmax", "nested_code", "nested_offset")


def _shape_placeholder(shape, device):
    """A uint8 Parameter of a weight's shape with one byte behind it (all strides 0): what
    PEFT's target_parameters look for to size their adapters."""
    return nn.Parameter(torch.empty((), dtype=torch.uint8, device=device).expand(shape),
                        requires_grad=False)


class MoeqExperts(nn.Module):
    """Replaces an experts module whose gate_up_proj / down_proj are [E, 2I, H] / [E, H, I]
    (Qwen3-MoE, GLM, Mixtral, DeepSeek) or [E, H, 2I] / [E, I, H] (gpt-oss, with biases and
    its interleaved, clamped SwiGLU). The weights are quantized by moeq and kept as buffers
    (`<projection>_<field>`); `gate_up_proj` and `down_proj` remain as storage-less uint8
    placeholders of the original shapes so PEFT can target them. forward(hidden_states [T, H],
    top_k_index [T, k], top_k_weights [T, k]) groups the token copies by expert and runs both
    projections through moeq's expert GEMM, with PEFT's LoRA fused in when it wraps this module."""

    def __init__(self, experts, format="nf4", blocksize=64, double_quant=False):
        super().__init__()
        gate_up, down = experts.gate_up_proj, experts.down_proj
        self.num_experts = gate_up.shape[0]
        # transformers marks [E, in, out] experts with is_transposed; else the shapes tell.
        out_in = not experts.is_transposed if hasattr(experts, "is_transposed") else \
            gate_up.shape[1] == 2 * down.shape[2] and gate_up.shape[2] == down.shape[1]
        self.layout = "out_in" if out_in else "in_out"
        self.is_transposed = not out_in  # PEFT's flag for [experts, in, out] parameters
        self._quantized = {}
        for name, weight in (("gate_up_proj", gate_up), ("down_proj", down)):
            q = moeq.quantize(weight.detach(), format=format, blocksize=blocksize,
                              nested=double_quant)
            for field, buffer in q.buffers.items():
                self.register_buffer(f"{name}_{field}", torch.from_dlpack(buffer))
            self._quantized[name] = {"format": format, "blocksize": blocksize,
                                     "shape": tuple(weight.shape), "dtype": q.dtype,
                                     "fields": tuple(q.buffers), "cache": (None, None)}
            self.register_parameter(name, _shape_placeholder(weight.shape, weight.device))
        for bias in ("gate_up_proj_bias", "down_proj_bias"):
            if hasattr(experts, bias):
                setattr(self, bias, getattr(experts, bias))
        # The activation: the experts class's own _apply_gate (gpt-oss: interleaved, clamped
        # SwiGLU) with what it reads, or act_fn(gate) * up over the two halves.
        self._apply_gate = getattr(type(experts), "_apply_gate", None)
        for attribute in ("act_fn", "alpha", "limit"):
            if hasattr(experts, attribute):
                setattr(self, attribute, getattr(experts, attribute))
        self._fused_gate = self._matching_swiglu()

    def qtensor(self, name):
        """The moeq.QTensor over this module's buffers for projection `name`."""
        meta = self._quantized[name]
        buffers = {field: getattr(self, f"{name}_{field}") for field in meta["fields"]}
        key = tuple(buffer.data_ptr() for buffer in buffers.values())
        if meta["cache"][0] != key:
            q = moeq.QTensor(format=meta["format"], blocksize=meta["blocksize"],
                             shape=meta["shape"], dtype=meta["dtype"],
                             **{field: moeq.from_dlpack(buffer) for field, buffer in buffers.items()})
            meta["cache"] = (key, q)
        return meta["cache"][1]

    def _apply(self, fn, recurse=True):
        # Moving or casting must never materialise the placeholders at full size, and a cast
        # (model.to(torch.bfloat16), .half()) must leave the 4-bit statistics (float32 absmax,
        # nested code...) as they are: those buffers follow the device only.
        for name in PROJECTIONS:
            del self._parameters[name]
        quantized = {f"{name}_{field}": self._buffers.pop(f"{name}_{field}")
                     for name in PROJECTIONS for field in self._quantized[name]["fields"]}
        super()._apply(fn, recurse)
        for key, buffer in quantized.items():
            moved = fn(buffer)
            self._buffers[key] = moved if moved.dtype == buffer.dtype else buffer.to(moved.device)
        for name in PROJECTIONS:
            device = getattr(self, f"{name}_packed").device
            self._parameters[name] = _shape_placeholder(self._quantized[name]["shape"], device)
        return self

    def _project(self, name, x, group_end, lora):
        if name not in lora:
            return expert_gemm_lora(x, self.qtensor(name), group_end, layout=self.layout)
        lora_a, lora_b, scale, swapped = lora[name]
        views = peft_lora_views(self.layout, self.num_experts, swapped)
        return expert_gemm_lora(x, self.qtensor(name), group_end, lora_a, lora_b, scale,
                                self.layout, lora_views=views)

    def _activate_in_torch(self, gate_up):
        if self._apply_gate is not None:
            return self._apply_gate(self, gate_up)
        gate, up = gate_up.chunk(2, dim=-1)
        return self.act_fn(gate) * up

    def _matching_swiglu(self):
        """moeq.swiglu's parameters that compute this module's own activation (SwiGLU over
        halves, or gpt-oss' clamped, interleaved form), found by running both on a probe
        that crosses the clamp bounds; None when neither matches (the activation then runs
        in torch)."""
        candidates = [{"layout": "halves"}]
        if hasattr(self, "alpha") and hasattr(self, "limit"):
            candidates.insert(0, {"layout": "interleaved", "alpha": float(self.alpha),
                                  "limit": float(self.limit), "up_offset": 1.0})
        probe = torch.randn(8, 64, generator=torch.Generator().manual_seed(0)) * 6
        try:
            expected = self._activate_in_torch(probe)
        except Exception:  # noqa: BLE001 - an activation that cannot run on a probe is not fused
            return None
        for params in candidates:
            actual = torch.from_dlpack(moeq.swiglu(probe, **params))
            if actual.shape == expected.shape and torch.allclose(actual, expected, rtol=1e-5, atol=1e-6):
                return params
        return None

    def _activate(self, gate_up):
        if self._fused_gate is not None and gate_up.dim() == 2:
            return swiglu(gate_up, **self._fused_gate)
        return self._activate_in_torch(gate_up)

    def forward(self, hidden_states, top_k_index, top_k_weights, lora=None):
        lora = lora or {}
        experts, top_k = self.num_experts, top_k_index.shape[-1]
        expert_of_copy = top_k_index.reshape(-1)
        order = torch.argsort(expert_of_copy, stable=True)
        token_of_row = order // top_k
        expert_of_row = expert_of_copy[order]
        # Counted without a host sync; copies routed nowhere (index E) join the last
        # expert's rows with zero weight.
        counts = torch.zeros(experts + 1, dtype=torch.int64, device=expert_of_copy.device)
        counts.scatter_add_(0, expert_of_copy, torch.ones_like(expert_of_copy))
        group_end = torch.cumsum(counts[:experts], 0)
        group_end[-1] = expert_of_copy.numel()
        row_weights = top_k_weights.reshape(-1)[order] * (expert_of_row < experts)
        expert_of_row = expert_of_row.clamp(max=experts - 1)

        hidden = self._project("gate_up_proj", hidden_states[token_of_row], group_end, lora)
        if hasattr(self, "gate_up_proj_bias"):
            hidden = hidden + self.gate_up_proj_bias[expert_of_row]
        out = self._project("down_proj", self._activate(hidden), group_end, lora)
        if hasattr(self, "down_proj_bias"):
            out = out + self.down_proj_bias[expert_of_row]
        combined = torch.zeros_like(hidden_states)
        return combined.index_add_(0, token_of_row, (out * row_weights[:, None]).to(combined.dtype))
