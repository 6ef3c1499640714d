"""Times moeq's CUDA quantize and dequantize next to bitsandbytes' quantize_4bit /
dequantize_4bit and a device-to-device copy of the same bytes (../shared/PERF.md),
after checking their outputs against each other. Runs on a GPU machine and builds
nothing: the first argument (or $MOEQ_LIBRARY) names libmoeq.so.

    python3 bench/quant.py [path/to/libmoeq.so] [--shapes ...] [--json out.json]

Bytes counted per call: the 16-bit side + the 4-bit payload + the stored absmax
(float32 per block; nested: one byte per block plus the nested statistics).
"""
import argparse
import json
import math
import os
import statistics
import sys

import torch

import moeq_ctypes as mq

SHAPES = {
    "qwen3-30b-a3b gate_up": (128, 1536, 2048),
    "mixtral-8x7b w1": (8, 28672, 4096),
    "1M": (1024, 1024),
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
BLOCKSIZE = 64
MAX_DIFFERING_BYTES = 1e-3  # bitsandbytes' approximate reciprocal flips codes on thresholds


def stored_bytes(numel, nested):
    blocks = math.ceil(numel / BLOCKSIZE)
    absmax = blocks + 4 * math.ceil(blocks / 256) + 4 * 257 if nested else 4 * blocks
    return 2 * numel + math.ceil(numel / 2) + absmax


def time_us(function, budget_s=0.25):
    """Median of per-call CUDA-event times after warm-up, in microseconds."""
    for _ in range(3):
        function()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    function()
    end.record()
    end.synchronize()
    reps = int(min(200, max(15, budget_s * 1e3 / max(start.elapsed_time(end), 1e-3))))
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for begin, finish in events:
        begin.record()
        function()
        finish.record()
    torch.cuda.synchronize()
    return 1e3 * statistics.median(begin.elapsed_time(finish) for begin, finish in events)


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.view(torch.int16), b.view(torch.int16))


def load_bitsandbytes():
    try:
        import bitsandbytes.functional as bnbf
        return bnbf
    except Exception as error:  # noqa: BLE001 - any import failure means no baseline
        print(f"bitsandbytes unavailable ({error}): its baseline is skipped", file=sys.stderr)
        return None


def bench_case(lib, bnbf, shape_name, dtype_name, nested, rows):
    shape, dtype = SHAPES[shape_name], DTYPES[dtype_name]
    numel = math.prod(shape)
    x = torch.randn(shape, dtype=dtype, device="cuda")
    ours = mq.QuantizedTensor(lib, shape, dtype, nested=nested)
    out = torch.full(shape, float("nan"), dtype=dtype, device="cuda")
    quantize = mq.quantize_call(lib, x, ours)
    dequantize = mq.dequantize_call(lib, ours.q, out)
    quantize()
    dequantize()
    checks = {"moeq dequantize wrote every element": not bool(out.isnan().any())}

    theirs = None
    if bnbf is not None:
        packed, state = bnbf.quantize_4bit(x, blocksize=BLOCKSIZE, compress_statistics=nested, quant_type="nf4")
        theirs = (packed, state)
        differing = int((ours.packed != packed.view(-1)).sum())
        checks[f"packed bytes differing from bitsandbytes: {differing} (< 0.1%)"] = \
            differing < MAX_DIFFERING_BYTES * ours.packed.numel()
        if nested:
            their_offset, our_offset = float(state.offset), float(ours.nested[2])
            codes = int((ours.absmax != state.absmax).sum())
            print(f"  nested offset moeq {our_offset!r} bitsandbytes {their_offset!r}; "
                  f"8-bit codes differing {codes} of {ours.absmax.numel()}")
            their_q, their_views = mq.qtensor(packed, state.absmax, shape, dtype, nested=(
                state.state2.absmax, state.state2.code, state.offset.reshape(1)))
        else:
            checks["absmax equal to bitsandbytes'"] = torch.equal(ours.absmax, state.absmax)
            their_q, their_views = mq.qtensor(packed, state.absmax, shape, dtype)
        moeq_of_theirs = torch.full_like(out, float("nan"))
        mq.dequantize_call(lib, their_q, moeq_of_theirs)()
        checks["moeq dequantize of bitsandbytes' bytes == bitsandbytes dequantize_4bit"] = same_bits(
            moeq_of_theirs, bnbf.dequantize_4bit(packed, state))
    torch.cuda.synchronize()
    for what, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")

    copy_source, copy_target = x.reshape(-1), torch.empty_like(x).reshape(-1)
    copy_us = time_us(lambda: copy_target.copy_(copy_source))
    copy_gbps = 2 * x.numel() * x.element_size() / copy_us / 1e3
    moeq_times = {"quantize": time_us(quantize), "dequantize": time_us(dequantize)}
    bnb_times = {}
    if theirs is not None:
        packed, state = theirs
        bnb_times["quantize"] = time_us(lambda: bnbf.quantize_4bit(
            x, blocksize=BLOCKSIZE, compress_statistics=nested, quant_type="nf4"))
        bnb_times["dequantize"] = time_us(lambda: bnbf.dequantize_4bit(packed, state))
    bytes_moved = stored_bytes(numel, nested)
    for op in ("quantize", "dequantize"):
        us = moeq_times[op]
        gbps = bytes_moved / us / 1e3
        row = dict(shape=shape_name, dims=list(shape), dtype=dtype_name, variant="nested" if nested else "plain",
                   op=op, moeq_us=us, moeq_gbps=gbps, pct_copy=100 * gbps / copy_gbps, copy_gbps=copy_gbps,
                   bnb_us=bnb_times.get(op), checked=all(checks.values()), bytes=bytes_moved)
        if op in bnb_times:
            row.update(bnb_gbps=bytes_moved / bnb_times[op] / 1e3, speedup=bnb_times[op] / us)
        rows.append(row)


def print_table(rows):
    header = f"{'tensor':<22} {'dtype':<5} {'variant':<7} {'op':<10} {'moeq us':>9} {'GB/s':>7} {'% copy':>7} " \
             f"{'bnb us':>9} {'bnb GB/s':>8} {'speed-up':>8} {'checked':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        bnb = f"{r['bnb_us']:>9.1f} {r['bnb_gbps']:>8.0f} {r['speedup']:>7.1f}x" if r.get("bnb_us") else \
            f"{'-':>9} {'-':>8} {'-':>8}"
        print(f"{r['shape']:<22} {r['dtype']:<5} {r['variant']:<7} {r['op']:<10} {r['moeq_us']:>9.1f} "
              f"{r['moeq_gbps']:>7.0f} {r['pct_copy']:>6.1f}% {bnb} {'yes' if r['checked'] else 'NO':>7}")
    print("copy GB/s (read + write, same 16-bit tensor): " +
          ", ".join(sorted({f"{r['shape']} {r['dtype']}: {r['copy_gbps']:.0f}" for r in rows})))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", nargs="?", default=None)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    lib = mq.load_library(args.library)
    if not lib.moeq_cuda_available():
        sys.exit("no CUDA GPU visible to libmoeq")
    bnbf = load_bitsandbytes()
    info = dict(moeq=lib.moeq_build_info().decode(), device=torch.cuda.get_device_name(), torch=torch.__version__,
                bitsandbytes=getattr(sys.modules.get("bitsandbytes"), "__version__", None))
    print(" | ".join(f"{k} {v}" for k, v in info.items()))
    torch.manual_seed(0)
    rows = []
    for shape_name in args.shapes:
        for dtype_name in args.dtypes:
            for nested in (False, True):
                print(f"{shape_name} {dtype_name} {'nested' if nested else 'plain'}", flush=True)
                bench_case(lib, bnbf, shape_name, dtype_name, nested, rows)
                torch.cuda.empty_cache()
    print_table(rows)
    path = args.json or (os.path.join(os.environ["OUT"], "quant_bench.json") if os.environ.get("OUT") else None)
    if path:
        with open(path, "w") as out:
            json.dump(dict(info=info, rows=rows), out, indent=1)
    if not all(r["checked"] for r in rows):
        sys.exit("some outputs did not check out")


if __name__ == "__main__":
    main()
