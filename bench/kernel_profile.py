"""Where the time of moeq's expert GEMM goes: each CUDA kernel's total time per call
of the forward, the backward and the whole layer (torch.profiler, which records every
kernel of the process through CUPTI, moeq's included), on bench/expert_gemm.py's shapes
and inputs. Runs on a GPU machine; MOEQ_LIBRARY names libmoeq.so.

    python3 bench/kernel_profile.py [--shape qwen3-30b-a3b] [--tokens 8192] [--reps 10] [--plain]
"""

import argparse
import collections

import torch
from torch.profiler import ProfilerActivity, profile

import expert_gemm as eg
import moeq_ctypes as mq


def kernel_times_us(function, reps):
    """{kernel name: (microseconds per call, launches per call)} over `reps` calls."""
    function()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            function()
        torch.cuda.synchronize()
    totals = collections.defaultdict(lambda: [0.0, 0])
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            totals[event.name][0] += event.device_time
            totals[event.name][1] += 1
    return {name: (us / reps, count / reps) for name, (us, count) in totals.items()}


def short(name, width=110):
    return name if len(name) <= width else name[:width - 3] + "..."


def print_breakdown(title, times):
    total = sum(us for us, _ in times.values())
    print(f"\n## {title}: {total / 1000:.3f} ms of kernel time per call")
    for name, (us, launches) in sorted(times.items(), key=lambda item: -item[1][0]):
        print(f"{us:9.1f} us {100 * us / total:5.1f}% x{launches:<4g} {short(name)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="qwen3-30b-a3b", choices=list(eg.SHAPES))
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--library", default=None)
    parser.add_argument("--plain", action="store_true",
                        help="call each op twice without torch.profiler (for ncu, which also needs CUPTI)")
    args = parser.parse_args()

    lib = mq.load_library(args.library)
    generator = torch.Generator(device="cuda")
    generator.manual_seed(0)
    experts, top_k, hidden, inter, in_out = eg.SHAPES[args.shape]
    counts = eg.routing_counts(args.tokens, experts, top_k, generator)
    projections = {which: eg.Projection(lib, experts, k, n, in_out, counts, args.rank, generator)
                   for which, (k, n) in (("gate_up", (hidden, 2 * inter)), ("down", (inter, hidden)))}
    print(lib.moeq_build_info().decode(), "|", torch.cuda.get_device_name(), "|", args.shape,
          args.tokens, "tokens, rank", args.rank)
    if args.plain:
        for call in (projections["gate_up"].moeq_forward, projections["gate_up"].moeq_backward,
                     projections["down"].moeq_forward, projections["down"].moeq_backward):
            call()
            call()
        torch.cuda.synchronize()
        return
    for which, proj in projections.items():
        print_breakdown(f"{which} forward", kernel_times_us(proj.moeq_forward, args.reps))
        print_breakdown(f"{which} backward", kernel_times_us(proj.moeq_backward, args.reps))
    layer = eg.ExpertLayer(projections["gate_up"], projections["down"])
    print_breakdown("layer forward+backward", kernel_times_us(lambda: layer.run_moeq(True), args.reps))


if __name__ == "__main__":
    main()
