"""bitsandbytes reads what `moeq quantize` wrote. For every 4-bit tensor of a quantized
checkpoint folder: QuantState.from_dict on its state-dict entries and dequantize_4bit on
the GPU give, bit for bit, FORMAT.md's decoding of the same bytes, and stay within 4-bit
error of the original. Needs torch, safetensors and the bitsandbytes wheel (GPU machine).

    python3 bench/bnb_reads_checkpoint.py ORIGINAL_FOLDER QUANTIZED_FOLDER
"""

import glob
import json
import os
import sys

import bitsandbytes.functional as F
import torch
from safetensors import safe_open

QUANT_STATE_KEY = ".quant_state.bitsandbytes__"


def open_folder(folder):
    """tensor name -> the safe_open handle of the shard holding it."""
    handles = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        handle = safe_open(path, framework="pt", device="cpu")
        handles.update({key: handle for key in handle.keys()})
    return handles


def format_md_decode(packed, state):
    """FORMAT.md: element 2j is the high nibble of byte j; value = dtype(table[code] * absmax)."""
    numel = state.shape.numel()
    codes = torch.stack([packed >> 4, packed & 15], dim=1).reshape(-1)[:numel].long()
    absmax = state.absmax
    if state.nested:
        index = torch.arange(absmax.numel(), device=absmax.device) // 256
        absmax = state.state2.code[absmax.long()] * state.state2.absmax[index] + state.offset
    scales = absmax.float().repeat_interleave(state.blocksize)[:numel]
    return (state.code[codes] * scales).to(state.dtype).reshape(state.shape)


def main(original_folder, quantized_folder):
    original, quantized = open_folder(original_folder), open_folder(quantized_folder)
    bases = sorted(key.split(QUANT_STATE_KEY)[0] for key in quantized if QUANT_STATE_KEY in key)
    failures = 0
    for base in bases:
        entries = {key[len(base) + 1:]: quantized[key].get_tensor(key)
                   for key in quantized if key.startswith(base + ".")}
        state = F.QuantState.from_dict(entries, device=torch.device("cuda"))
        packed = quantized[base].get_tensor(base).cuda()
        restored = F.dequantize_4bit(packed, state)
        exact = torch.equal(restored, format_md_decode(packed.reshape(-1), state))
        reference = original[base].get_tensor(base).cuda().float()
        error = (restored.float() - reference).norm() / reference.norm()
        failures += not exact
        print(f"{base:60s} {state.quant_type} b{state.blocksize}{' dq' if state.nested else ''} "
              f"{str(tuple(state.shape)):20s} bnb == FORMAT.md decode: {exact}; "
              f"relative error vs original {error:.4f}")
    print(f"{len(bases) - failures} of {len(bases)} 4-bit tensors: bitsandbytes' dequantize_4bit equals "
          f"FORMAT.md's decoding of the bytes moeq wrote")
    return 1 if failures or not bases else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
