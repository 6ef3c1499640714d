"""QTensor <-> bitsandbytes: state-dict entries (FORMAT.md's keys) and Params4bit / QuantState."""

import ctypes
import json
import math
import struct

from ._dtypes import CPU, DTYPES, dtype_name, is_cuda
from ._errors import argument_error
from ._qtensor import QTensor
from ._streams import stream_handle
from ._tensor import Tensor, as_tensor

# The code tables bitsandbytes stores as `quant_map` (float32 [16]).
NF4_CODE = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0)
_FP4_MAGNITUDES = (0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0)
# Sign bit set: the negated magnitude, except that bitsandbytes stores code 8 as +0.0.
FP4_CODE = tuple(m / 12.0 for m in _FP4_MAGNITUDES) + tuple(0.0 - m / 12.0 for m in _FP4_MAGNITUDES)
CODES = {"nf4": NF4_CODE, "fp4": FP4_CODE}

QUANT_STATE_KEY = ".quant_state.bitsandbytes__"
NESTED_BLOCKSIZE = 256


def _host_bytes(tensor):
    """The bytes of a small contiguous tensor, read on the host."""
    if is_cuda(tensor.__dlpack_device__()):
        tensor = tensor._copy_to((CPU, 0))
    count = math.prod(tensor.shape) * DTYPES[tensor.dtype][1] // 8
    return ctypes.string_at(tensor.data_ptr, count)


def _small_tensor(data, shape, dtype, device):
    """A moeq.Tensor holding `data` (bytes) on `device`."""
    host = Tensor.empty(shape, dtype, (CPU, 0))
    ctypes.memmove(host.data_ptr, data, len(data))
    if not is_cuda(device):
        return host
    placed = Tensor.empty(shape, dtype, device)
    placed._held.copy_from(host._held)
    return placed


def _float32_tensor(values, device):
    return _small_tensor(struct.pack(f"<{len(values)}f", *values), (len(values),), "float32",
                         device)


def to_bnb_state_dict(q, prefix):
    metadata = {"quant_type": q.format, "blocksize": q.blocksize, "dtype": q.dtype,
                "shape": list(q.shape)}
    entries = {prefix: q.packed, f"{prefix}.absmax": q.absmax,
               f"{prefix}.quant_map": _float32_tensor(CODES[q.format], (CPU, 0))}
    if q.nested:
        (offset,) = struct.unpack("<f", _host_bytes(q.nested_offset))
        metadata.update(nested_blocksize=NESTED_BLOCKSIZE, nested_dtype="float32",
                        nested_offset=offset)
        entries[f"{prefix}.nested_absmax"] = q.nested_absmax
        entries[f"{prefix}.nested_quant_map"] = q.nested_code
    text = json.dumps(metadata).encode("utf-8")
    entries[f"{prefix}{QUANT_STATE_KEY}{q.format}"] = _small_tensor(text, (len(text),), "uint8",
                                                                     (CPU, 0))
    return entries


def from_bnb_state_dict(state, prefix, stream):
    keys = [key for key in state if key.startswith(prefix + QUANT_STATE_KEY)]
    if len(keys) != 1:
        raise argument_error(f"state: expected one '{prefix}{QUANT_STATE_KEY}<format>' entry, "
                             f"got {len(keys)}")
    handle = stream_handle(stream, list(state.values()))

    def entry(suffix):
        key = prefix + suffix
        if key not in state:
            raise argument_error(f"state: expected an entry '{key}'")
        return as_tensor(state[key], f"state['{key}']", handle)

    metadata = json.loads(_host_bytes(entry(keys[0][len(prefix):])).decode("utf-8"))
    packed = entry("")
    buffers = {}
    if "nested_offset" in metadata:
        offset = _float32_tensor([metadata["nested_offset"]], packed.__dlpack_device__())
        buffers = {"nested_absmax": entry(".nested_absmax"),
                   "nested_code": entry(".nested_quant_map"), "nested_offset": offset}
    return QTensor(packed=packed, absmax=entry(".absmax"), format=metadata["quant_type"],
                   blocksize=int(metadata["blocksize"]), shape=tuple(metadata["shape"]),
                   dtype=dtype_name(metadata["dtype"], "state dtype"), **buffers)


def from_bnb(weight, quant_state, stream):
    state = quant_state if quant_state is not None else getattr(weight, "quant_state", None)
    if state is None:
        raise argument_error("quant_state: expected a bitsandbytes QuantState (or a Params4bit "
                             f"weight carrying one), got none for {type(weight).__name__}")
    handle = stream_handle(stream, [weight])
    buffers = {}
    if state.nested:
        buffers = {"nested_absmax": as_tensor(state.state2.absmax, "state2.absmax", handle),
                   "nested_code": as_tensor(state.state2.code, "state2.code", handle),
                   "nested_offset": as_tensor(state.offset.reshape(1), "offset", handle)}
    return QTensor(packed=as_tensor(weight.detach(), "weight", handle),
                   absmax=as_tensor(state.absmax, "absmax", handle), format=state.quant_type,
                   blocksize=int(state.blocksize), shape=tuple(state.shape),
                   dtype=dtype_name(state.dtype, "quant_state.dtype"), **buffers)
