"""Times the moeq CUDA expert GEMM with LoRA (forward and backward) next to
torch bf16 `_grouped_mm` (with LoRA as extra grouped GEMMs) and bitsandbytes
`dequantize_4bit` + the same, on the shapes of ../shared/PERF.md, after checking
outputs. Runs on a GPU machine; builds nothing (MOEQ_LIBRARY names libmoeq.so).

    python3 bench/expert_gemm.py [--shapes qwen3 glm ...] [--tokens 8192 64] [--json out.json]
"""

import argparse
import ctypes
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

    def __init__(self, lib, experts, in_features, out_features, in_out, counts, rank, generator):
        self.lib = lib
        self.E, self.K, self.N, self.r = experts, in_features, out_features, rank
        self.in_out = in_out
        self.M = int(counts.sum())
        dev = "cuda"
        self.shape = (experts, in_features, out_features) if in_out else (experts, out_features, in_features)
        numel = math.prod(self.shape)
        self.packed = torch.randint(0, 256, (numel // 2,), dtype=torch.uint8, device=dev, generator=generator)
        self.absmax = torch.rand(numel // BLOCKSIZE, device=dev, generator=generator) * 0.02 + 0.01
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
        self.q, self.q_views = mq.qtensor(self.packed, self.absmax, self.shape, torch.bfloat16)
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

    def torch_forward(self, weight, lora=True):
        y = torch._grouped_mm(self.x, self.weight_kn(weight), offs=self.group_end)
        if lora:
            xa = torch._grouped_mm(self.x, self.lora_a.transpose(-2, -1), offs=self.group_end)
            y = y + self.scale * torch._grouped_mm(xa, self.lora_b.transpose(-2, -1), offs=self.group_end)
        return y

    def torch_backward(self, weight):
        """grad_x, grad_lora_a, grad_lora_b; the last two through 2-D x 2-D grouped_mm
        (ragged reduction dim), None where this torch build refuses it."""
        g = torch._grouped_mm(self.grad_y, self.lora_b, offs=self.group_end)
        grad_x = torch._grouped_mm(self.grad_y, self.weight_kn(weight).transpose(-2, -1), offs=self.group_end)
        grad_x = grad_x + self.scale * torch._grouped_mm(g, self.lora_a, offs=self.group_end)
        if self.lora_grads_supported is False:
            return grad_x, None, None
        try:
            xa = torch._grouped_mm(self.x, self.lora_a.transpose(-2, -1), offs=self.group_end)
            grad_a = self.scale * torch._grouped_mm(g.t(), self.x, offs=self.group_end)
            grad_b = self.scale * torch._grouped_mm(self.grad_y.t(), xa, offs=self.group_end)
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

    def floor_ms(self, backward, active_experts):
        """The larger of the FLOPs at the matmul ceiling and the fewest bytes (active
        experts' 4-bit weights and absmax; x and y, or dY and x read and dX written)
        at the copy ceiling."""
        weight_bytes = active_experts * self.N * self.K / 2 * (1 + 8 / BLOCKSIZE)
        act_bytes = 2 * self.M * ((self.N + 2 * self.K) if backward else (self.K + self.N))
        return max(self.flops(backward) / (MATMUL_TFLOPS * 1e9),
                   (weight_bytes + act_bytes) / (COPY_TBPS * 1e9))


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


def bench_projection(lib, name, tokens, which, proj, use_bnb, rows):
    weight = dequantize_nf4(proj.packed, proj.absmax, proj.shape)
    active = int((torch.diff(proj.group_end.cpu(), prepend=torch.zeros(1, dtype=torch.int32)) > 0).sum())
    # Outputs first: moeq against torch on the same dequantized weights.
    proj.moeq_forward()
    reference = proj.torch_forward(weight)
    forward_error = relative_error(proj.y, reference)
    proj.moeq_backward()
    ref_grad_x, ref_grad_a, ref_grad_b = proj.torch_backward(weight)
    backward_error = relative_error(proj.grad_x, ref_grad_x)
    if ref_grad_a is not None:
        backward_error = max(backward_error, relative_error(proj.grad_lora_a, ref_grad_a),
                             relative_error(proj.grad_lora_b, ref_grad_b))
    ok = forward_error < 2e-2 and backward_error < 2e-2
    dequantize = None
    if use_bnb and math.prod(proj.shape) >= 2**31:
        # Its kernels index with int32 and exit the process on larger tensors.
        print(f"{name} {which}: {math.prod(proj.shape)} weight elements, past bitsandbytes' "
              "int32 indexing: its baseline is skipped", file=sys.stderr)
    elif use_bnb:
        dequantize = bnb_dequantizer(proj.packed, proj.absmax, proj.shape)
    bnb_match = None
    if dequantize is not None:
        try:
            bnb_match = bool(torch.equal(dequantize().view(proj.shape), weight))
        except Exception as error:  # noqa: BLE001 - a broken wheel means no baseline
            print(f"bitsandbytes dequantize_4bit failed ({error}): its baseline is skipped", file=sys.stderr)
            dequantize = None

    for backward in (False, True):
        moeq_ms = median_ms(proj.moeq_backward if backward else proj.moeq_forward)
        if backward:
            bf16_ms = median_ms(lambda: proj.torch_backward(weight))
            bf16_nolora_ms = median_ms(lambda: torch._grouped_mm(
                proj.grad_y, proj.weight_kn(weight).transpose(-2, -1), offs=proj.group_end))
            bnb_ms = (median_ms(lambda: proj.torch_backward(dequantize().view(proj.shape)))
                      if dequantize else None)
        else:
            bf16_ms = median_ms(lambda: proj.torch_forward(weight))
            bf16_nolora_ms = median_ms(lambda: proj.torch_forward(weight, lora=False))
            bnb_ms = (median_ms(lambda: proj.torch_forward(dequantize().view(proj.shape)))
                      if dequantize else None)
        floor = proj.floor_ms(backward, active)
        row = {
            "shape": name, "tokens": tokens, "gemm": which, "pass": "bwd" if backward else "fwd",
            "M": proj.M, "N": proj.N, "K": proj.K, "rank": proj.r, "active_experts": active,
            "moeq_ms": moeq_ms, "tflops": proj.flops(backward) / (moeq_ms * 1e9),
            "floor_ms": floor, "pct_floor": 100.0 * floor / moeq_ms,
            "bf16_lora_ms": bf16_ms, "bf16_nolora_ms": bf16_nolora_ms, "bnb_lora_ms": bnb_ms,
            "error": backward_error if backward else forward_error, "checked": ok,
            "bnb_dequant_matches": bnb_match,
        }
        rows.append(row)
        print(table_line(row), flush=True)
    del weight
    torch.cuda.empty_cache()


TABLE_HEADER = (f"{'shape':15} {'tok':>5} {'gemm':8} {'pass':4} {'moeq ms':>8} {'TFLOP/s':>8} {'%floor':>7} "
                f"{'bf16 ms':>8} {'bf16-noL':>8} {'bnb ms':>8} {'x bf16':>7} {'x noL':>7} {'x bnb':>7} {'err':>8} ok")


def table_line(r):
    bnb = f"{r['bnb_lora_ms']:8.3f}" if r["bnb_lora_ms"] else f"{'n/a':>8}"
    x_bnb = f"{r['moeq_ms'] / r['bnb_lora_ms']:7.2f}" if r["bnb_lora_ms"] else f"{'n/a':>7}"
    return (f"{r['shape']:15} {r['tokens']:5d} {r['gemm']:8} {r['pass']:4} {r['moeq_ms']:8.3f} "
            f"{r['tflops']:8.1f} {r['pct_floor']:6.1f}% {r['bf16_lora_ms']:8.3f} {r['bf16_nolora_ms']:8.3f} "
            f"{bnb} {r['moeq_ms'] / r['bf16_lora_ms']:7.2f} {r['moeq_ms'] / r['bf16_nolora_ms']:7.2f} {x_bnb} "
            f"{r['error']:8.1e} {'yes' if r['checked'] else 'NO'}")


def print_table(rows):
    print(TABLE_HEADER)
    print("-" * len(TABLE_HEADER))
    for r in rows:
        print(table_line(r))
    print("x bf16 / x noL / x bnb: moeq time over the baseline's (below 1: moeq faster). "
          "bf16 = torch _grouped_mm + LoRA grouped GEMMs, noL = without LoRA, bnb = dequantize_4bit + bf16. "
          "err: relative Frobenius error of moeq against torch on the same dequantized weights.")
    matches = {r["bnb_dequant_matches"] for r in rows if r["bnb_dequant_matches"] is not None}
    if matches:
        print("bitsandbytes dequantize_4bit of the same bytes equals the weights moeq uses:", matches == {True})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--tokens", nargs="+", type=int, default=[8192, 64])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--no-bnb", action="store_true")
    parser.add_argument("--library", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    lib = mq.load_library(args.library)
    if not lib.moeq_cuda_available():
        sys.exit("no CUDA GPU visible to libmoeq")
    print(lib.moeq_build_info().decode(), "|", torch.cuda.get_device_name(), "| torch", torch.__version__)
    generator = torch.Generator(device="cuda")
    generator.manual_seed(0)
    rows = []
    print(TABLE_HEADER, flush=True)
    for name in args.shapes:
        experts, top_k, hidden, inter, in_out = SHAPES[name]
        for tokens in args.tokens:
            counts = routing_counts(tokens, experts, top_k, generator)
            for which, (k, n) in (("gate_up", (hidden, 2 * inter)), ("down", (inter, hidden))):
                proj = Projection(lib, experts, k, n, in_out, counts, args.rank, generator)
                bench_projection(lib, name, tokens, which, proj, not args.no_bnb, rows)
                del proj
                torch.cuda.empty_cache()
            if args.json:  # after every shape, so a crash later keeps what was measured
                with open(args.json, "w") as out:
                    json.dump(rows, out, indent=1)
    print()
    print_table(rows)
    if not all(r["checked"] for r in rows):
        sys.exit("some outputs did not match the torch reference")


if __name__ == "__main__":
    main()
