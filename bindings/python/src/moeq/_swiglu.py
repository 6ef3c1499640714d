"""moeq.swiglu and moeq.swiglu_backward: the gated activation between the projections."""

import math

from . import capi
from ._errors import argument_error
from ._streams import stream_handle
from ._tensor import as_tensor, output_tensor

LAYOUTS = {"halves": capi.MOEQ_GATE_UP_HALVES, "interleaved": capi.MOEQ_GATE_UP_INTERLEAVED}


def _config(layout, alpha, limit, up_offset):
    if layout not in LAYOUTS:
        raise argument_error(f"layout: expected 'halves' or 'interleaved', got {layout!r}")
    config = capi.moeq_swiglu_config()
    config.layout = LAYOUTS[layout]
    config.alpha = alpha
    config.limit = math.inf if limit is None else limit
    config.up_offset = up_offset
    return config


def swiglu(gate_up, out=None, layout="halves", alpha=1.0, limit=None, up_offset=0.0, stream=None):
    """(clamp(up, -limit, limit) + up_offset) * g * sigmoid(alpha * g), g = min(gate, limit),
    from a gate_up projection's output [M, 2I] into `out` [M, I] (or a new moeq.Tensor) in
    one pass. The defaults are silu(gate) * up over the halves gate = [:, :I], up = [:, I:]
    (Qwen3, GLM, Mixtral, DeepSeek); gpt-oss is layout="interleaved", alpha=1.702,
    limit=7.0, up_offset=1.0. Returns `out` when given."""
    handle = stream_handle(stream, [gate_up, out])
    source = as_tensor(gate_up, "gate_up", handle)
    shape = (source.shape[0] if source.shape else 0, source.shape[-1] // 2 if source.shape else 0)
    target = output_tensor(out, "out", shape, source.dtype, source.__dlpack_device__(), handle)
    capi.moeq_swiglu(_config(layout, alpha, limit, up_offset), source._held.dl_tensor(),
                     target._held.dl_tensor(), handle)
    return target if out is None else out


def swiglu_backward(gate_up, grad_out, grad_gate_up=None, layout="halves", alpha=1.0, limit=None,
                    up_offset=0.0, stream=None):
    """The gradient at gate_up [M, 2I] given grad_out [M, I], into `grad_gate_up` (or a new
    moeq.Tensor) in gate_up's layout; zero past a clamp bound. Returns `grad_gate_up` when
    given."""
    handle = stream_handle(stream, [gate_up, grad_out, grad_gate_up])
    source = as_tensor(gate_up, "gate_up", handle)
    gradient = as_tensor(grad_out, "grad_out", handle)
    target = output_tensor(grad_gate_up, "grad_gate_up", source.shape, source.dtype, source.__dlpack_device__(),
                           handle)
    capi.moeq_swiglu_backward(_config(layout, alpha, limit, up_offset), source._held.dl_tensor(),
                              gradient._held.dl_tensor(), target._held.dl_tensor(), handle)
    return target if grad_gate_up is None else grad_gate_up
