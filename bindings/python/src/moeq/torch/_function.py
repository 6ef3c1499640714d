"""expert_gemm_lora for PyTorch: an autograd Function over moeq's forward and backward GEMM."""

import torch

import moeq


def _as_given(lora_a, lora_b):
    return lora_a, lora_b


class _ExpertGemmLoRA(torch.autograd.Function):
    """Saves x, the routing (group_end), the LoRA factors and x·Aᵀ; the 4-bit weight stays
    the QTensor it was, never a dense copy."""

    @staticmethod
    def forward(ctx, x, lora_a, lora_b, weight, group_end, layout, scale, lora_views):
        has_lora = lora_a is not None
        a_view, b_view = lora_views(lora_a.detach(), lora_b.detach()) if has_lora else (None, None)
        out_features = weight.shape[1] if layout == "out_in" else weight.shape[2]
        y = x.new_empty(x.shape[0], out_features)
        x_lora_a = x.new_empty(x.shape[0], a_view.shape[1], dtype=torch.float32) if has_lora else None
        moeq.expert_gemm_lora(x.detach(), weight, group_end, a_view, b_view, scale, layout, out=y,
                              x_lora_a_out=x_lora_a)
        ctx.save_for_backward(x, group_end, lora_a, lora_b, x_lora_a)
        ctx.weight, ctx.layout, ctx.scale, ctx.lora_views = weight, layout, scale, lora_views
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, group_end, lora_a, lora_b, x_lora_a = ctx.saved_tensors
        grads = {name: torch.empty_like(tensor) for name, tensor, needed in
                 (("x", x, ctx.needs_input_grad[0]), ("lora_a", lora_a, ctx.needs_input_grad[1]),
                  ("lora_b", lora_b, ctx.needs_input_grad[2])) if needed}
        if grads:
            out = {"x": grads["x"]} if "x" in grads else {}
            a_view = b_view = None
            if lora_a is not None:
                a_view, b_view = ctx.lora_views(lora_a.detach(), lora_b.detach())
                grad_a_view, grad_b_view = ctx.lora_views(grads.get("lora_a", lora_a.detach()),
                                                          grads.get("lora_b", lora_b.detach()))
                out.update({name: view for name, view in (("lora_a", grad_a_view),
                                                          ("lora_b", grad_b_view)) if name in grads})
            moeq.expert_gemm_lora_backward(grad_y.contiguous(), x.detach(), ctx.weight, group_end,
                                           a_view, b_view, ctx.scale, ctx.layout,
                                           x_lora_a=x_lora_a, compute=list(out), out=out)
        return grads.get("x"), grads.get("lora_a"), grads.get("lora_b"), None, None, None, None, None


def expert_gemm_lora(x, weight, group_end, lora_a=None, lora_b=None, lora_scale=1.0,
                     layout="out_in", lora_views=None):
    """Differentiable moeq.expert_gemm_lora over torch tensors: gradients reach x, lora_a and
    lora_b. `lora_views(lora_a, lora_b)` maps the given factors (e.g. PEFT's lora_A.weight
    [r*E, in] and lora_B.weight [out, r*E]) to moeq's [E, r, K] and [E, N, r] views, applied
    to their gradients too, so nothing is copied; by default they are taken as given."""
    return _ExpertGemmLoRA.apply(x, lora_a, lora_b, weight, group_end, layout, float(lora_scale),
                                 lora_views or _as_given)


class _SwiGLU(torch.autograd.Function):
    """Saves gate_up only: the backward recomputes the activation's pieces from it."""

    @staticmethod
    def forward(ctx, gate_up, params):
        if gate_up.dim() == 2 and gate_up.stride(-1) != 1:
            gate_up = gate_up.contiguous()  # moeq reads rows of adjacent columns
        out = gate_up.new_empty(gate_up.shape[0], gate_up.shape[1] // 2)
        moeq.swiglu(gate_up.detach(), out=out, **params)
        ctx.save_for_backward(gate_up)
        ctx.params = params
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (gate_up,) = ctx.saved_tensors
        grad_gate_up = torch.empty_like(gate_up)
        moeq.swiglu_backward(gate_up.detach(), grad_out.contiguous(), grad_gate_up, **ctx.params)
        return grad_gate_up, None


def swiglu(gate_up, layout="halves", alpha=1.0, limit=None, up_offset=0.0):
    """Differentiable moeq.swiglu over a [M, 2I] torch tensor (see moeq.swiglu for the
    parameters): one pass forward, one backward."""
    return _SwiGLU.apply(gate_up, {"layout": layout, "alpha": float(alpha), "limit": limit,
                                   "up_offset": float(up_offset)})
