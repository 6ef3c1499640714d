"""moeq.expert_gemm_lora and moeq.expert_gemm_lora_backward: the per-expert GEMM with LoRA."""

from collections import namedtuple

from . import capi
from ._errors import argument_error
from ._streams import stream_handle
from ._tensor import as_tensor, output_tensor

LAYOUTS = {"out_in": capi.MOEQ_LAYOUT_EXPERT_OUT_IN, "in_out": capi.MOEQ_LAYOUT_EXPERT_IN_OUT}

ExpertGemmGrads = namedtuple("ExpertGemmGrads", ["x", "lora_a", "lora_b"])
ExpertGemmGrads.__doc__ = "Gradients of expert_gemm_lora; None for those not computed."


def _layout_code(layout):
    if layout not in LAYOUTS:
        raise argument_error(f"layout: expected 'out_in' ([E, N, K]) or 'in_out' ([E, K, N]), "
                             f"got {layout!r}")
    return LAYOUTS[layout]


def _features(weight, layout):
    """(N, K) of a [E, N, K] ("out_in") or [E, K, N] ("in_out") weight; 0 when it is not
    3-D, which the library then reports."""
    if len(weight.shape) != 3:
        return 0, 0
    _, first, second = weight.shape
    return (first, second) if layout == "out_in" else (second, first)


def _rows(tensor):
    return tensor.shape[0] if tensor.shape else 0


def _optional(value, argument, stream, writable=False):
    return None if value is None else as_tensor(value, argument, stream, writable)


def _view(tensor):
    return None if tensor is None else tensor._held.dl_tensor()


def _rank(lora_a):
    return lora_a.shape[1] if lora_a is not None and lora_a.ndim == 3 else 0


def _set_shared_args(args, weight, layout, group_end, lora_a, lora_b, lora_scale, stream):
    """Fills what forward and backward arguments share; returns the weight's
    moeq_qtensor, which must outlive the call."""
    weight_view = weight.native(stream)
    args.weight = weight_view
    args.weight_layout = _layout_code(layout)
    args.group_end = group_end._held.dl_tensor()
    args.lora_a = _view(lora_a)
    args.lora_b = _view(lora_b)
    args.lora_scale = float(lora_scale)
    return weight_view


def expert_gemm_lora(x, weight, group_end, lora_a=None, lora_b=None, lora_scale=1.0,
                     layout="out_in", out=None, return_x_lora_a=False, x_lora_a_out=None,
                     stream=None):
    """For every expert e owning rows [group_end[e-1], group_end[e]) of x:
    ``y_e = x_e · W_eᵀ + lora_scale · (x_e · A_eᵀ) · B_eᵀ``.

    x [M, K]; weight a QTensor [E, N, K] (layout "out_in") or [E, K, N] ("in_out");
    group_end [E] int32/int64 cumulative row ends; lora_a [E, r, K] and lora_b [E, N, r]
    (any strides; float32 or x's dtype), or both None. Returns y [M, N] (`out` when given;
    rows past group_end[-1] are not written), and with `return_x_lora_a` also the float32
    [M, r] product x·Aᵀ that expert_gemm_lora_backward can reuse (written into
    `x_lora_a_out`, float32 or x's dtype, when given)."""
    handle = stream_handle(stream, [x, group_end, lora_a, lora_b, out, x_lora_a_out])
    x_tensor = as_tensor(x, "x", handle)
    group_end_tensor = as_tensor(group_end, "group_end", handle)
    lora_a_tensor = _optional(lora_a, "lora_a", handle)
    lora_b_tensor = _optional(lora_b, "lora_b", handle)
    out_features, _ = _features(weight, layout)
    device = x_tensor.__dlpack_device__()
    y = output_tensor(out, "out", (_rows(x_tensor), out_features), x_tensor.dtype, device, handle)
    x_lora_a = None
    if return_x_lora_a or x_lora_a_out is not None:
        if lora_a_tensor is None:
            raise argument_error("return_x_lora_a: there is no LoRA (lora_a is None)")
        x_lora_a = output_tensor(x_lora_a_out, "x_lora_a_out", (_rows(x_tensor), _rank(lora_a_tensor)),
                           "float32", device, handle)

    args = capi.moeq_expert_gemm_args()
    args.x = x_tensor._held.dl_tensor()
    weight_view = _set_shared_args(args, weight, layout, group_end_tensor, lora_a_tensor,
                                   lora_b_tensor, lora_scale, handle)
    args.y = y._held.dl_tensor()
    args.x_lora_a = _view(x_lora_a)
    capi.moeq_expert_gemm_lora(args, handle)
    del weight_view  # kept alive until here: args points into it
    result = y if out is None else out
    if x_lora_a is None:
        return result
    return result, x_lora_a if x_lora_a_out is None else x_lora_a_out


def expert_gemm_lora_backward(grad_y, x, weight, group_end, lora_a=None, lora_b=None,
                              lora_scale=1.0, layout="out_in", x_lora_a=None, compute=None,
                              out=None, stream=None):
    """Gradients of expert_gemm_lora for every expert e:
    ``grad_x_e = dY_e · W_e + s · (dY_e · B_e) · A_e``,
    ``grad_lora_a_e = s · (dY_e · B_e)ᵀ · x_e``, ``grad_lora_b_e = s · dY_eᵀ · (x_e · A_eᵀ)``.

    `compute` names the gradients wanted among "x", "lora_a", "lora_b" (default: all that
    exist); `out` maps those names to tensors to overwrite (any strides for the LoRA
    gradients, e.g. views of PEFT's .grad). `x` may be None when only "x" is wanted, and
    `x_lora_a` from the forward saves recomputing x·Aᵀ. Returns ExpertGemmGrads."""
    out = dict(out or {})
    every = set(ExpertGemmGrads._fields)
    wanted = set(compute) if compute is not None else every if lora_a is not None else {"x"}
    if not wanted <= every:
        raise argument_error(f"compute: expected names among {sorted(every)}, "
                             f"got {sorted(wanted - every)}")
    handle = stream_handle(stream, [grad_y, x, group_end, lora_a, lora_b, *out.values()])
    grad_y_tensor = as_tensor(grad_y, "grad_y", handle)
    x_tensor = _optional(x, "x", handle)
    group_end_tensor = as_tensor(group_end, "group_end", handle)
    lora_a_tensor = _optional(lora_a, "lora_a", handle)
    lora_b_tensor = _optional(lora_b, "lora_b", handle)
    x_lora_a_tensor = _optional(x_lora_a, "x_lora_a", handle)

    experts = weight.shape[0] if weight.shape else 0
    out_features, in_features = _features(weight, layout)
    rank = _rank(lora_a_tensor)
    rows = _rows(grad_y_tensor)
    device = grad_y_tensor.__dlpack_device__()
    grads = {}
    if "x" in wanted:
        grads["x"] = output_tensor(out.get("x"), "out['x']", (rows, in_features), grad_y_tensor.dtype,
                             device, handle)
    for name, source, shape in (("lora_a", lora_a_tensor, (experts, rank, in_features)),
                                ("lora_b", lora_b_tensor, (experts, out_features, rank))):
        if name in wanted:
            if source is None:
                raise argument_error(f"compute: '{name}' asked for, but {name} is None")
            grads[name] = output_tensor(out.get(name), f"out['{name}']", shape, source.dtype, device,
                                  handle)

    args = capi.moeq_expert_gemm_grad_args()
    args.x = _view(x_tensor)
    weight_view = _set_shared_args(args, weight, layout, group_end_tensor, lora_a_tensor,
                                   lora_b_tensor, lora_scale, handle)
    args.grad_y = grad_y_tensor._held.dl_tensor()
    args.x_lora_a = _view(x_lora_a_tensor)
    args.grad_x = _view(grads.get("x"))
    args.grad_lora_a = _view(grads.get("lora_a"))
    args.grad_lora_b = _view(grads.get("lora_b"))
    capi.moeq_expert_gemm_lora_backward(args, handle)
    del weight_view  # kept alive until here: args points into it
    results = {name: out.get(name, tensor) for name, tensor in grads.items()}
    return ExpertGemmGrads(*(results.get(name) for name in ExpertGemmGrads._fields))
