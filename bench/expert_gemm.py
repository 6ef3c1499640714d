"""Times the moeq CUDA expert GEMM with LoRA (forward and backward) next to
torch bf16 `_grouped_mm` (with LoRA as extra grouped GEMMs) and bitsandbytes
`dequantize_4bit` + the same, on the shapes of ../shared/PERF.md, after checking
outputs: each GEMM alone, and the whole expert layer (gate_up -> silu(gate) * up
-> down, forward and forward+backward, with each variant's peak extra memory).
Runs on a GPU machine; builds nothing (MOEQ_LIBRARY names libmoeq.so).

    python3 bench/expert_gemm.py [--shapes qwen3-30b-a3b glm-4.7-flash ...] [--tokens 8192 64]
                                 [--layer-only | --no-layer] [--no-bnb] [--json out.json]
"""

import argparse
import ctypes
import functools
import json
import math
import statistics
import sys

import torch

import moeq_ctypes as mq

# PERF.md: name -> (experts, top-k, hidden H, intermediate I, weights stored [E, in, out])
SHAPES = {
    "qwen3-30b-a3b": (128, 8, 2048, 768, False),
    "glm-4.7-flash": (64, 4, 2048, 1536, False),
    "gpt-oss-20b": (32, 4, 2880, 2880, True),
    "mixtral-8x7b": (8, 2, 4096, 14336, False),
    "deepseek-v3": (256, 8, 7168, 2048, False),
}
# H200 ceilings measured in PERF.md: the physical floor of each row.
MATMUL_TFLOPS = 742.0
COPY_TBPS = 4.27
# Largest relative Frobenius error of moeq against torch on the same weights.
TOLERANCE = 2e-2
# PERF.md's expert-layer targets, (first bar, goal) in ms, by (shape, tokens, pass).
LAYER_TARGETS_MS = {
    ("qwen3-30b-a3b", 8192, "fwd"): (1.6, 1.1),
    ("qwen3-30b-a3b", 8192, "fwd+bwd"): (3.5, 2.4),
    ("qwen3-30b-a3b", 64, "fwd"): (0.25, 0.12),
}
# PERF.md's expert-layer baselines on the H200 (torch 2.11, bitsandbytes 0.50), (bf16
# grouped_mm + LoRA, bitsandbytes dequantize + the same) in ms: this run's should agree.
LAYER_BASELINES_MS = {
    ("qwen3-30b-a3b", 8192, "fwd"): (2.34, 3.00), ("qwen3-30b-a3b", 8192, "fwd+bwd"): (5.43, 6.09),
    ("qwen3-30b-a3b", 64, "fwd"): (0.61, 1.26), ("qwen3-30b-a3b", 64, "fwd+bwd"): (1.50, 2.12),
    ("glm-4.7-flash", 8192, "fwd"): (2.10, 2.72), ("glm-4.7-flash", 8192, "fwd+bwd"): (4.63, 5.31),
    ("gpt-oss-20b", 8192, "fwd"): (4.16, 4.97), ("gpt-oss-20b", 8192, "fwd+bwd"): (9.02, 9.81),
    ("mixtral-8x7b", 8192, "fwd"): (11.5, 13.1), ("mixtral-8x7b", 8192, "fwd+bwd"): (25.8, 25.4),
}

NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
       -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
       0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
       0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]
BLOCKSIZE = 64


def median_ms(function, warmup=3, reps=20):
    """Median of `reps` timed calls (CUDA events) after `warmup` calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def peak_extra_bytes(function):
    """How far one call of `function` takes torch's allocated bytes above what was resident."""
    torch.cuda.synchronize()
    resident = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    function()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - resident


def try_baseline(what, function):
    """function(), or None after saying why: a failing baseline leaves the rest of the run."""
    try:
        return function()
    except Exception as error:  # noqa: BLE001 - any failure means no such baseline
        print(f"{what} failed ({error}): skipped", file=sys.stderr)
        torch.cuda.empty_cache()
        return None


def time_baseline(what, function):
    """median_ms(function), or None where the baseline fails."""
    return try_baseline(what, lambda: median_ms(function))


def floor_ms(flops, fewest_bytes):
    """The physical floor: the FLOPs at the matmul ceiling or the fewest bytes at the copy
    ceiling, whichever takes longer."""
    return max(flops / (MATMUL_TFLOPS * 1e9), fewest_bytes / (COPY_TBPS * 1e9))


def dequantize_nf4(packed, absmax, shape):
    """bf16(table[code] * absmax) computed in float32, one expert at a time."""
    table = torch.tensor(NF4, dtype=torch.float32, device=packed.device)
    experts = shape[0]
    per_expert = math.prod(shape[1:])
    out = torch.empty(shape, dtype=torch.bfloat16, device=packed.device)
    for e in range(experts):
        chunk = packed[e * per_expert // 2:(e + 1) * per_expert // 2]
        codes = torch.stack([chunk >> 4, chunk & 15], dim=-1).reshape(-1).long()
        scale = absmax[e * per_expert // BLOCKSIZE:(e + 1) * per_expert // BLOCKSIZE]
        values = table[codes].reshape(-1, BLOCKSIZE) * scale[:, None]
        out[e] = values.reshape(shape[1:]).to(torch.bfloat16)
    return out


class Projection:
    """One expert projection y = x W_e^T + s (x A_e^T) B_e^T with its inputs on the GPU."""

    def __init__(self, lib, experts, in_features, out_features, in_out, counts, rank, generator, nested=False):
        self.lib = lib
        self.E, self.K, self.N, self.r = experts, in_features, out_features, rank
        self.in_out = in_out
        self.M = int(counts.sum())
        self.active_experts = int((counts > 0).sum())
        dev = "cuda"
        self.shape = (experts, in_features, out_features) if in_out else (experts, out_features, in_features)
        numel = math.prod(self.shape)
        self.packed = torch.randint(0, 256, (numel // 2,), dtype=torch.uint8, device=dev, generator=generator)
        self.absmax = torch.rand(numel // BLOCKSIZE, device=dev, generator=generator) * 0.02 + 0.01
        self.nested = None
        if nested:
            # Double quantization's layout with random statistics: 8-bit codes per block,
            # a float32 scale per 256 blocks, a 256-entry map and an offset. self.absmax
            # becomes what they decode to (code * scale + offset, two float32 roundings,
            # as the library computes it), which the torch references dequantize with.
            blocks = numel // BLOCKSIZE
            self.absmax_codes = torch.randint(0, 256, (blocks,), dtype=torch.uint8, device=dev, generator=generator)
            nested_absmax = torch.rand((blocks + 255) // 256, device=dev, generator=generator) * 0.01 + 0.005
            nested_code = torch.linspace(0.0, 1.0, 256, device=dev)
            nested_offset = torch.tensor([0.01], device=dev)
            self.nested = (nested_absmax, nested_code, nested_offset)
            scale = nested_absmax.repeat_interleave(256)[:blocks]
            self.absmax = nested_code[self.absmax_codes.long()] * scale + nested_offset
        self.group_end = torch.cumsum(counts, 0).to(torch.int32).to(dev)
        self.x = torch.randn(self.M, in_features, device=dev, dtype=torch.bfloat16, generator=generator)
        self.grad_y = torch.randn(self.M, out_features, device=dev, dtype=torch.bfloat16, generator=generator)
        self.lora_a = (torch.randn(experts, rank, in_features, device=dev, generator=generator)
                       / math.sqrt(in_features)).to(torch.bfloat16)
        self.lora_b = (torch.randn(experts, out_features, rank, device=dev, generator=generator)
                       * 0.05).to(torch.bfloat16)
        self.scale = 2.0
        self.lora_grads_supported = None
        self.y = torch.empty(self.M, out_features, device=dev, dtype=torch.bfloat16)
        self.x_lora_a = torch.empty(self.M, rank, device=dev, dtype=torch.bfloat16)
        self.grad_x = torch.empty(self.M, in_features, device=dev, dtype=torch.bfloat16)
        self.grad_lora_a = torch.empty_like(self.lora_a)
        self.grad_lora_b = torch.empty_like(self.lora_b)
        self._bind()

    # ------------------------------------------------------------------ moeq
    def _bind(self):
        if self.nested is None:
            self.q, self.q_views = mq.qtensor(self.packed, self.absmax, self.shape, torch.bfloat16)
        else:
            self.q, self.q_views = mq.qtensor(self.packed, self.absmax_codes, self.shape, torch.bfloat16,
                                              nested=self.nested)
        v = {name: mq.TensorView(getattr(self, name)) for name in
             ("x", "group_end", "lora_a", "lora_b", "y", "x_lora_a", "grad_y", "grad_x",
              "grad_lora_a", "grad_lora_b")}
        self.views = v
        layout = mq.MOEQ_LAYOUT_EXPERT_IN_OUT if self.in_out else mq.MOEQ_LAYOUT_EXPERT_OUT_IN
        f = mq.moeq_expert_gemm_args()
        f.struct_size = ctypes.sizeof(f)
        f.x, f.weight, f.weight_layout = v["x"].pointer(), ctypes.pointer(self.q), layout
        f.group_end, f.lora_a, f.lora_b = v["group_end"].pointer(), v["lora_a"].pointer(), v["lora_b"].pointer()
        f.lora_scale, f.y, f.x_lora_a = self.scale, v["y"].pointer(), v["x_lora_a"].pointer()
        b = mq.moeq_expert_gemm_grad_args()
        b.struct_size = ctypes.sizeof(b)
        b.x, b.weight, b.weight_layout = v["x"].pointer(), ctypes.pointer(self.q), layout
        b.group_end, b.lora_a, b.lora_b = v["group_end"].pointer(), v["lora_a"].pointer(), v["lora_b"].pointer()
        b.lora_scale, b.grad_y, b.x_lora_a = self.scale, v["grad_y"].pointer(), v["x_lora_a"].pointer()
        b.grad_x, b.grad_lora_a, b.grad_lora_b = (v["grad_x"].pointer(), v["grad_lora_a"].pointer(),
                                                  v["grad_lora_b"].pointer())
        self.workspaces = []
        for args, size_fn in ((f, self.lib.moeq_expert_gemm_workspace_size),
                              (b, self.lib.moeq_expert_gemm_grad_workspace_size)):
            size = ctypes.c_size_t()
            mq.check(self.lib, size_fn(ctypes.byref(args), ctypes.byref(size)), "workspace size")
            workspace = torch.empty(max(size.value, 1), dtype=torch.uint8, device="cuda")
            self.workspaces.append(workspace)
            args.workspace, args.workspace_bytes = workspace.data_ptr(), size.value
        self.forward_args, self.backward_args = f, b

    def moeq_forward(self):
        stream = torch.cuda.current_stream().cuda_stream
        mq.check(self.lib, self.lib.moeq_expert_gemm_lora(ctypes.byref(self.forward_args), stream), "forward")

    def moeq_backward(self):
        stream = torch.cuda.current_stream().cuda_stream
        mq.check(self.lib, self.lib.moeq_expert_gemm_lora_backward(ctypes.byref(self.backward_args), stream),
                 "backward")

    # ------------------------------------------------------------------ torch baselines
    def weight_kn(self, weight):
        """W_e as the [E, K, N] operand of grouped_mm (a view, no copy)."""
        return weight if self.in_out else weight.transpose(-2, -1)

    def torch_forward(self, weight, lora=True, x=None):
        """y and x_lora_a (None without LoRA) from x, by default the projection's own."""
        x = self.x if x is None else x
        y = torch._grouped_mm(x, self.weight_kn(weight), offs=self.group_end)
        if not lora:
            return y, None
        xa = torch._grouped_mm(x, self.lora_a.transpose(-2, -1), offs=self.group_end)
        y = y + self.scale * torch._grouped_mm(xa, self.lora_b.transpose(-2, -1), offs=self.group_end)
        return y, xa

    def torch_backward(self, weight, x=None, grad_y=None, x_lora_a=None):
        """grad_x, grad_lora_a, grad_lora_b; the last two through 2-D x 2-D grouped_mm
        (ragged reduction dim), None where this torch build refuses it. x and grad_y are by
        default the projection's own; x_lora_a, the forward's, is recomputed when not given."""
        x = self.x if x is None else x
        grad_y = self.grad_y if grad_y is None else grad_y
        g = torch._grouped_mm(grad_y, self.lora_b, offs=self.group_end)
        grad_x = torch._grouped_mm(grad_y, self.weight_kn(weight).transpose(-2, -1), offs=self.group_end)
        grad_x = grad_x + self.scale * torch._grouped_mm(g, self.lora_a, offs=self.group_end)
        if self.lora_grads_supported is False:
            return grad_x, None, None
        try:
            xa = (torch._grouped_mm(x, self.lora_a.transpose(-2, -1), offs=self.group_end)
                  if x_lora_a is None else x_lora_a)
            grad_a = self.scale * torch._grouped_mm(g.t(), x, offs=self.group_end)
            grad_b = self.scale * torch._grouped_mm(grad_y.t(), xa, offs=self.group_end)
        except RuntimeError as error:
            print(f"torch 2-D x 2-D grouped_mm refused ({error}): LoRA gradients left out of the "
                  "bf16 backward baseline", file=sys.stderr)
            self.lora_grads_supported = False
            return grad_x, None, None
        self.lora_grads_supported = True
        return grad_x, grad_a, grad_b

    def flops(self, backward):
        """Forward: x W^T plus the two rank-r products. Backward (frozen W, x_lora_a
        saved): dY W plus dY B, (dY B) A, dA and dB."""
        main = 2.0 * self.M * self.N * self.K
        lora = 2.0 * self.M * self.r * (self.K + self.N)
        return main + (2 * lora if backward else lora)

    def fewest_bytes(self, backward):
        """Active experts' 4-bit weights and absmax; x read and y written, or dY and x read
        and dX written."""
        absmax_bytes = 1 if self.nested is not None else 4  # per block: a code, or a float32
        weight_bytes = self.active_experts * self.N * self.K / 2 * (1 + 2 * absmax_bytes / BLOCKSIZE)
        act_bytes = 2 * self.M * ((self.N + 2 * self.K) if backward else (self.K + self.N))
        return weight_bytes + act_bytes

    def buffer_bytes(self, backward):
        """Bytes of what moeq's forward (and backward) write: y, x_lora_a, the gradients and
        the workspaces. They are bound here once, where torch allocates its outputs in the
        call, so they count as the call's extra memory."""
        names = ("y", "x_lora_a") + (("grad_x", "grad_lora_a", "grad_lora_b") if backward else ())
        tensors = [getattr(self, name) for name in names] + self.workspaces[:2 if backward else 1]
        return sum(tensor.nbytes for tensor in tensors)


def swiglu(gate_up, out=None):
    """silu(gate) * up, gate and up the two halves of gate_up's output."""
    gate, up = gate_up.chunk(2, dim=-1)
    return torch.mul(torch.nn.functional.silu(gate), up, out=out)


def swiglu_backward(gate_up, grad, out=None):
    """The gradient of swiglu at gate_up's output given `grad`, as autograd computes it
    (silu's backward kernel, one product per half), into `out` where given."""
    gate, up = gate_up.chunk(2, dim=-1)
    out = torch.empty_like(gate_up) if out is None else out
    grad_gate, grad_up = out.chunk(2, dim=-1)
    torch.ops.aten.silu_backward.grad_input(grad * up, gate, grad_input=grad_gate)
    torch.mul(grad, torch.nn.functional.silu(gate), out=grad_up)
    return out


class ExpertLayer:
    """gate_up -> silu(gate) * up -> down over two Projections that share the routing. moeq's
    calls are bound to the projections' buffers, so the activation is written into down.x
    and its gradient into gate_up.grad_y, where the bound calls read them; down.grad_y is
    the layer's incoming gradient. moeq's layer runs the activation as moeq_swiglu (what
    moeq.torch.MoeqExperts runs), or with torch_activation=True as torch's (the baselines'
    activation, so the GEMMs' share shows)."""

    def __init__(self, gate_up, down):
        self.gate_up, self.down = gate_up, down
        self.projections = (gate_up, down)
        lib = gate_up.lib
        self.moeq_swiglu = mq.swiglu_call(lib, gate_up.y, down.x)
        self.moeq_swiglu_backward = mq.swiglu_call(lib, gate_up.y, down.grad_x, gate_up.grad_y)

    def run_moeq(self, backward, torch_activation=False):
        self.gate_up.moeq_forward()
        if torch_activation:
            swiglu(self.gate_up.y, out=self.down.x)
        else:
            self.moeq_swiglu()
        self.down.moeq_forward()
        if backward:
            self.down.moeq_backward()
            if torch_activation:
                swiglu_backward(self.gate_up.y, self.down.grad_x, out=self.gate_up.grad_y)
            else:
                self.moeq_swiglu_backward()
            self.gate_up.moeq_backward()

    def moeq_gradients(self):
        """In run_torch's order: grad_x, then each projection's grad_lora_a and grad_lora_b."""
        return (self.gate_up.grad_x, self.gate_up.grad_lora_a, self.gate_up.grad_lora_b,
                self.down.grad_lora_a, self.down.grad_lora_b)

    def moeq_buffer_bytes(self, backward):
        """The projections' bound buffers plus the layer's: the activation and its gradient."""
        layer_buffers = (self.down.x, self.gate_up.grad_y) if backward else (self.down.x,)
        return (sum(p.buffer_bytes(backward) for p in self.projections)
                + sum(tensor.nbytes for tensor in layer_buffers))

    def run_torch(self, backward, gate_up_weight, down_weight):
        """y, and with the backward the gradients of moeq_gradients (None where torch
        refuses the LoRA ones). The weights are callables giving bf16 [E, ...] tensors,
        each called once, in the forward: the bitsandbytes baseline's bf16 copies are kept
        for the backward, as autograd keeps a dequantized weight that grouped_mm used."""
        gate_up_w = gate_up_weight()
        gate_up, gate_up_xa = self.gate_up.torch_forward(gate_up_w)
        activation = swiglu(gate_up)
        down_w = down_weight()
        y, down_xa = self.down.torch_forward(down_w, x=activation)
        if not backward:
            return y, None
        grad_activation, down_grad_a, down_grad_b = self.down.torch_backward(
            down_w, x=activation, x_lora_a=down_xa)
        del down_w, activation, down_xa  # autograd frees saved tensors once their backward has run
        grad_gate_up = swiglu_backward(gate_up, grad_activation)
        del gate_up, grad_activation
        grad_x, gate_up_grad_a, gate_up_grad_b = self.gate_up.torch_backward(
            gate_up_w, grad_y=grad_gate_up, x_lora_a=gate_up_xa)
        return y, (grad_x, gate_up_grad_a, gate_up_grad_b, down_grad_a, down_grad_b)

    def flops_and_fewest_bytes(self, backward):
        """Both projections' FLOPs and fewest bytes, summed over the passes run."""
        passes = (False, True) if backward else (False,)
        return (sum(p.flops(b) for p in self.projections for b in passes),
                sum(p.fewest_bytes(b) for p in self.projections for b in passes))


def relative_error(actual, expected):
    return (actual.float() - expected.float()).norm().item() / max(expected.float().norm().item(), 1e-30)


def bnb_dequantizer(packed, absmax, shape):
    """bitsandbytes dequantize_4bit of the same bytes, or None without bitsandbytes."""
    try:
        import bitsandbytes.functional as bnbf
        state = bnbf.QuantState(absmax=absmax, shape=torch.Size(shape),
                                code=bnbf.get_4bit_type("nf4", packed.device), blocksize=BLOCKSIZE,
                                quant_type="nf4", dtype=torch.bfloat16)
    except Exception as error:  # noqa: BLE001 - any failure here means no baseline
        print(f"bitsandbytes unavailable ({error}): its baseline is skipped", file=sys.stderr)
        return None
    return lambda: bnbf.dequantize_4bit(packed.view(-1, 1), state)


def routing_counts(tokens, experts, top_k, generator):
    scores = torch.rand(tokens, experts, device="cuda", generator=generator)
    chosen = scores.topk(top_k, dim=1).indices.reshape(-1)
    return torch.bincount(chosen, minlength=experts).cpu()


class BaselineWeights:
    """One projection's weights for the torch baselines: dequantized to bf16 once and kept
    resident, as a bf16 model's are, and bitsandbytes' dequantize_4bit of the same bytes,
    run inside each timed call (dequantize None without bitsandbytes)."""

    def __init__(self, label, proj, use_bnb):
        self.shape = proj.shape
        self.weight = dequantize_nf4(proj.packed, proj.absmax, proj.shape)
        self.dequantize, self.bnb_matches = None, None
        if use_bnb and math.prod(proj.shape) >= 2**31:
            # Its kernels index with int32 and exit the process on larger tensors.
            print(f"{label}: {math.prod(proj.shape)} weight elements, past bitsandbytes' "
                  "int32 indexing: its baseline is skipped", file=sys.stderr)
        elif use_bnb:
            self.dequantize = bnb_dequantizer(proj.packed, proj.absmax, proj.shape)
        if self.dequantize is not None:
            try:
                self.bnb_matches = bool(torch.equal(self.bnb(), self.weight))
            except Exception as error:  # noqa: BLE001 - a broken wheel means no baseline
                print(f"bitsandbytes dequantize_4bit failed ({error}): its baseline is skipped", file=sys.stderr)
                self.dequantize = None

    def bf16(self):
        return self.weight

    def bnb(self):
        return self.dequantize().view(self.shape)


def bench_projection(name, tokens, which, proj, weights, report):
    # Outputs first: moeq against torch on the same dequantized weights.
    proj.moeq_forward()
    reference, _ = proj.torch_forward(weights.bf16())
    forward_error = relative_error(proj.y, reference)
    proj.moeq_backward()
    ref_grad_x, ref_grad_a, ref_grad_b = proj.torch_backward(weights.bf16())
    backward_error = relative_error(proj.grad_x, ref_grad_x)
    if ref_grad_a is not None:
        backward_error = max(backward_error, relative_error(proj.grad_lora_a, ref_grad_a),
                             relative_error(proj.grad_lora_b, ref_grad_b))
    del reference, ref_grad_x, ref_grad_a, ref_grad_b
    ok = forward_error < TOLERANCE and backward_error < TOLERANCE

    for backward in (False, True):
        moeq_ms = median_ms(proj.moeq_backward if backward else proj.moeq_forward)
        if backward:
            def with_lora(weight):
                return proj.torch_backward(weight())

            def without_lora(weight):
                return torch._grouped_mm(proj.grad_y, proj.weight_kn(weight()).transpose(-2, -1),
                                         offs=proj.group_end)
        else:
            def with_lora(weight):
                return proj.torch_forward(weight())

            def without_lora(weight):
                return proj.torch_forward(weight(), lora=False)
        label = f"{name} {tokens} {which} {'bwd' if backward else 'fwd'}"
        bf16_ms = time_baseline(f"{label} bf16", lambda: with_lora(weights.bf16))
        bf16_nolora_ms = time_baseline(f"{label} bf16 without LoRA", lambda: without_lora(weights.bf16))
        bnb_ms = time_baseline(f"{label} bitsandbytes", lambda: with_lora(weights.bnb)) if weights.dequantize else None
        floor = floor_ms(proj.flops(backward), proj.fewest_bytes(backward))
        report.add({
            "kind": "gemm", "shape": name, "tokens": tokens, "gemm": which, "pass": "bwd" if backward else "fwd",
            "M": proj.M, "N": proj.N, "K": proj.K, "rank": proj.r, "active_experts": proj.active_experts,
            "moeq_ms": moeq_ms, "tflops": proj.flops(backward) / (moeq_ms * 1e9),
            "floor_ms": floor, "pct_floor": 100.0 * floor / moeq_ms,
            "bf16_lora_ms": bf16_ms, "bf16_nolora_ms": bf16_nolora_ms, "bnb_lora_ms": bnb_ms,
            "error": backward_error if backward else forward_error, "checked": ok,
            "bnb_dequant_matches": weights.bnb_matches,
        })


def bench_layer(name, tokens, layer, gate_up_weights, down_weights, report):
    """The layer's rows, fwd and fwd+bwd: moeq's layer checked against the bf16 one on the
    same weights, then moeq and each baseline timed and their peak extra memory taken."""
    baselines = {"bf16": (gate_up_weights.bf16, down_weights.bf16)}
    if gate_up_weights.dequantize and down_weights.dequantize:
        baselines["bnb"] = (gate_up_weights.bnb, down_weights.bnb)
    # Outputs first: y, grad_x and the four LoRA gradients (moeq's activation checked
    # against torch's on its own too, so an error there cannot hide in the layer's).
    layer.run_moeq(backward=True)
    activation_error = relative_error(layer.down.x, swiglu(layer.gate_up.y))
    reference = try_baseline(f"{name} {tokens} bf16 expert layer",
                             lambda: layer.run_torch(True, *baselines["bf16"]))
    forward_error = backward_error = None
    if reference is not None:
        y, gradients = reference
        forward_error = max(relative_error(layer.down.y, y), activation_error)
        backward_error = max(relative_error(mine, theirs)
                             for mine, theirs in zip(layer.moeq_gradients(), gradients) if theirs is not None)
        del y, gradients
    del reference
    torch.cuda.empty_cache()

    for backward in (False, True):
        which_pass = "fwd+bwd" if backward else "fwd"
        moeq = functools.partial(layer.run_moeq, backward)
        moeq_ms = median_ms(moeq)
        torch_activation_ms = median_ms(functools.partial(layer.run_moeq, backward, True))
        floor = floor_ms(*layer.flops_and_fewest_bytes(backward))
        error = max(forward_error, backward_error) if backward and forward_error is not None else forward_error
        target_ms, goal_ms = LAYER_TARGETS_MS.get((name, tokens, which_pass), (None, None))
        row = {
            "kind": "layer", "shape": name, "tokens": tokens, "pass": which_pass,
            "M": layer.gate_up.M, "H": layer.gate_up.K, "I": layer.down.K, "rank": layer.gate_up.r,
            "active_experts": layer.gate_up.active_experts,
            "moeq_ms": moeq_ms, "moeq_torch_activation_ms": torch_activation_ms,
            "floor_ms": floor, "pct_floor": 100.0 * floor / moeq_ms,
            "moeq_extra_bytes": layer.moeq_buffer_bytes(backward) + peak_extra_bytes(moeq),
            "error": error, "checked": error is not None and error < TOLERANCE,
            "target_ms": target_ms, "goal_ms": goal_ms,
        }
        for baseline in ("bf16", "bnb"):
            row[f"{baseline}_lora_ms"] = row[f"{baseline}_extra_bytes"] = None
            if baseline not in baselines:
                continue
            call = functools.partial(layer.run_torch, backward, *baselines[baseline])
            label = f"{name} {tokens} {which_pass} {baseline} expert layer"
            row[f"{baseline}_lora_ms"] = time_baseline(label, call)
            if row[f"{baseline}_lora_ms"] is not None:
                row[f"{baseline}_extra_bytes"] = try_baseline(label, lambda: peak_extra_bytes(call))
            torch.cuda.empty_cache()
        report.add(row)


def cell(value, width, spec=".3f"):
    """value formatted right-aligned in `width`, or n/a where it was not measured."""
    return f"{'n/a':>{width}}" if value is None else f"{value:{width}{spec}}"


def ratio(numerator, denominator):
    return None if numerator is None or not denominator else numerator / denominator


TABLE_HEADER = (f"{'shape':15} {'tok':>5} {'gemm':8} {'pass':4} {'moeq ms':>8} {'TFLOP/s':>8} {'%floor':>7} "
                f"{'bf16 ms':>8} {'bf16-noL':>8} {'bnb ms':>8} {'x bf16':>7} {'x noL':>7} {'x bnb':>7} {'err':>8} ok")


def table_line(r):
    return (f"{r['shape']:15} {r['tokens']:5d} {r['gemm']:8} {r['pass']:4} {r['moeq_ms']:8.3f} "
            f"{r['tflops']:8.1f} {r['pct_floor']:6.1f}% {cell(r['bf16_lora_ms'], 8)} {cell(r['bf16_nolora_ms'], 8)} "
            f"{cell(r['bnb_lora_ms'], 8)} "
            + " ".join(cell(ratio(r["moeq_ms"], r[key]), 7, ".2f")
                       for key in ("bf16_lora_ms", "bf16_nolora_ms", "bnb_lora_ms"))
            + f" {r['error']:8.1e} {'yes' if r['checked'] else 'NO'}")


def print_rows(header, line, rows):
    print(header)
    print("-" * len(header))
    for r in rows:
        print(line(r))


def print_table(rows):
    print_rows(TABLE_HEADER, table_line, rows)
    print("x bf16 / x noL / x bnb: moeq time over the baseline's (below 1: moeq faster). "
          "bf16 = torch _grouped_mm + LoRA grouped GEMMs, noL = without LoRA, bnb = dequantize_4bit + bf16. "
          "err: relative Frobenius error of moeq against torch on the same dequantized weights.")
    matches = {r["bnb_dequant_matches"] for r in rows if r["bnb_dequant_matches"] is not None}
    if matches:
        print("bitsandbytes dequantize_4bit of the same bytes equals the weights moeq uses:", matches == {True})


LAYER_HEADER = (f"{'shape':15} {'tok':>5} {'pass':7} {'moeq ms':>8} {'%floor':>7} {'torchact':>8} "
                f"{'bf16 ms':>8} {'bnb ms':>8} "
                f"{'x bf16':>7} {'x bnb':>7} {'MiB moeq':>9} {'MiB bf16':>9} {'MiB bnb':>9} {'err':>8} ok  target")


def layer_verdict(r):
    """Against PERF.md's first bar where it sets one, else against this run's baselines."""
    if r["target_ms"] is not None:
        met = "met" if r["moeq_ms"] <= r["target_ms"] else "MISSED"
        return f"<={r['target_ms']:g} ms (goal {r['goal_ms']:g}) {met}"
    measured = [r[key] for key in ("bf16_lora_ms", "bnb_lora_ms") if r[key] is not None]
    if not measured:
        return "n/a"
    return f"faster than baselines: {'yes' if r['moeq_ms'] < min(measured) else 'NO'}"


def layer_line(r):
    mib = [None if r[key] is None else r[key] / 2**20
           for key in ("moeq_extra_bytes", "bf16_extra_bytes", "bnb_extra_bytes")]
    return (f"{r['shape']:15} {r['tokens']:5d} {r['pass']:7} {r['moeq_ms']:8.3f} {r['pct_floor']:6.1f}% "
            f"{cell(r['moeq_torch_activation_ms'], 8)} {cell(r['bf16_lora_ms'], 8)} {cell(r['bnb_lora_ms'], 8)} "
            + " ".join([cell(ratio(r["moeq_ms"], r[key]), 7, ".2f") for key in ("bf16_lora_ms", "bnb_lora_ms")]
                       + [cell(value, 9, ".1f") for value in mib])
            + f" {cell(r['error'], 8, '.1e')} {'yes' if r['checked'] else 'NO':3} {layer_verdict(r)}")


def print_layer_table(rows):
    print_rows(LAYER_HEADER, layer_line, rows)
    print("Expert layer: gate_up -> silu(gate) * up -> down, LoRA on both projections; fwd+bwd = the forward "
          "then grad_x and the four LoRA gradients. moeq runs the activation as moeq_swiglu (one pass each "
          "way, as moeq.torch.MoeqExperts does); torchact: moeq's layer with torch's activation instead, as "
          "the baselines run it. x bf16 / x bnb: moeq time over the baseline's (below 1: "
          "moeq faster); bnb dequantizes both projections in the forward and keeps the bf16 copies for the "
          "backward, as autograd does. MiB: peak memory above the resident weights, inputs and LoRA adapters "
          "during one call (moeq's counts its bound outputs, saved x_lora_a, gradients and workspaces). "
          "err: largest relative Frobenius error of moeq's y (and grad_x, LoRA gradients) against the bf16 "
          "layer on the same dequantized weights.")
    compared = [r for r in rows if (r["shape"], r["tokens"], r["pass"]) in LAYER_BASELINES_MS]
    if compared:
        print("Against PERF.md (H200): moeq's time and first bar; this run's baselines next to PERF.md's.")
    for r in compared:
        perf_bf16, perf_bnb = LAYER_BASELINES_MS[(r["shape"], r["tokens"], r["pass"])]
        target = f"first bar {layer_verdict(r)}" if r["target_ms"] is not None else "no absolute target"
        print(f"  {r['shape']} {r['tokens']} {r['pass']}: moeq {r['moeq_ms']:.3f} ms, {target}; "
              f"bf16+LoRA {cell(r['bf16_lora_ms'], 0)} ms (PERF.md {perf_bf16:.2f}), "
              f"bnb {cell(r['bnb_lora_ms'], 0)} ms (PERF.md {perf_bnb:.2f})")


class Report:
    """Rows as they are measured: each printed at once, under its table's header where the
    kind of row changes, and kept for the json and the closing tables."""
    LINES = {"gemm": (TABLE_HEADER, table_line), "layer": (LAYER_HEADER, layer_line)}

    def __init__(self):
        self.rows, self.last_kind = [], None

    def add(self, row):
        header, line = self.LINES[row["kind"]]
        if row["kind"] != self.last_kind:
            print(header)
            self.last_kind = row["kind"]
        print(line(row), flush=True)
        self.rows.append(row)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--tokens", nargs="+", type=int, default=[8192, 64])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--no-bnb", action="store_true", help="leave out the bitsandbytes baseline")
    parser.add_argument("--nested", action="store_true",
                        help="double-quantized absmax (bitsandbytes' compress_statistics) for moeq; the "
                             "bitsandbytes baseline is left out")
    rows_wanted = parser.add_mutually_exclusive_group()
    rows_wanted.add_argument("--layer-only", action="store_true", help="time the expert layer, not each GEMM")
    rows_wanted.add_argument("--no-layer", action="store_true", help="time each GEMM, not the expert layer")
    parser.add_argument("--library", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    lib = mq.load_library(args.library)
    if not lib.moeq_cuda_available():
        sys.exit("no CUDA GPU visible to libmoeq")
    print(lib.moeq_build_info().decode(), "|", torch.cuda.get_device_name(), "| torch", torch.__version__)
    generator = torch.Generator(device="cuda")
    generator.manual_seed(0)
    report = Report()
    for name in args.shapes:
        experts, top_k, hidden, inter, in_out = SHAPES[name]
        for tokens in args.tokens:
            counts = routing_counts(tokens, experts, top_k, generator)
            projections = {which: Projection(lib, experts, k, n, in_out, counts, args.rank, generator, args.nested)
                           for which, (k, n) in (("gate_up", (hidden, 2 * inter)), ("down", (inter, hidden)))}
            weights = {which: BaselineWeights(f"{name} {which}", proj, not (args.no_bnb or args.nested))
                       for which, proj in projections.items()}
            if not args.layer_only:
                for which, proj in projections.items():
                    bench_projection(name, tokens, which, proj, weights[which], report)
            if not args.no_layer:
                layer = ExpertLayer(projections["gate_up"], projections["down"])
                bench_layer(name, tokens, layer, weights["gate_up"], weights["down"], report)
                del layer
            del projections, weights
            torch.cuda.empty_cache()
            if args.json:  # after every shape, so a crash later keeps what was measured
                with open(args.json, "w") as out:
                    json.dump(report.rows, out, indent=1)
    gemm_rows = [r for r in report.rows if r["kind"] == "gemm"]
    layer_rows = [r for r in report.rows if r["kind"] == "layer"]
    if gemm_rows:
        print()
        print_table(gemm_rows)
    if layer_rows:
        print()
        print_layer_table(layer_rows)
    if not all(r["checked"] for r in report.rows):
        sys.exit("some outputs did not match the torch reference")


if __name__ == "__main__":
    main()
