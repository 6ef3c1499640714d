"""moeq.QTensor: a 4-bit tensor in bitsandbytes' layout, its buffers held as moeq.Tensor objects."""

import dataclasses
from typing import Optional

from . import capi
from ._dtypes import DTYPES, FLOAT_DTYPES
from ._errors import argument_error
from ._tensor import Tensor

FORMATS = {"nf4": capi.MOEQ_FORMAT_NF4, "fp4": capi.MOEQ_FORMAT_FP4}


def format_code(format):
    if format not in FORMATS:
        raise argument_error(f"format: expected 'nf4' or 'fp4', got {format!r}")
    return FORMATS[format]


@dataclasses.dataclass(frozen=True)
class QTensor:
    """A 4-bit (NF4/FP4) tensor of logical `shape` and `dtype`, quantized in blocks of
    `blocksize` flat elements: `packed` uint8 codes (element 2j in the high nibble of byte
    j), `absmax` per block (float32, or uint8 codes when nested, i.e. double-quantized with
    `nested_absmax`, `nested_code` and `nested_offset`). Every buffer exports through
    DLPack; see to_bnb_state_dict / from_bnb_state_dict / from_bnb for bitsandbytes."""

    packed: Tensor
    absmax: Tensor
    format: str
    blocksize: int
    shape: tuple
    dtype: str
    nested_absmax: Optional[Tensor] = None
    nested_code: Optional[Tensor] = None
    nested_offset: Optional[Tensor] = None

    def __post_init__(self):
        format_code(self.format)
        if self.dtype not in FLOAT_DTYPES:
            raise argument_error(f"dtype: expected one of {', '.join(FLOAT_DTYPES)}, "
                                 f"got {self.dtype!r}")
        nested_parts = (self.nested_absmax, self.nested_code, self.nested_offset)
        if any(part is None for part in nested_parts) != all(part is None for part in nested_parts):
            raise argument_error("nested_absmax, nested_code, nested_offset: expected all three "
                                 "(double quantization) or none")

    @property
    def nested(self):
        return self.nested_absmax is not None

    @property
    def device(self):
        return self.packed.device

    @property
    def buffers(self):
        """The buffers that exist, by field name."""
        names = ("packed", "absmax", "nested_absmax", "nested_code", "nested_offset")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def native(self, stream):
        """The moeq_qtensor of borrowed views, for a call on CUDA `stream` (which is made
        to wait for the buffers). Keep it and this QTensor alive during the call."""
        native = capi.moeq_qtensor()
        native.format = format_code(self.format)
        native.blocksize = self.blocksize
        native.nested = int(self.nested)
        if len(self.shape) > capi.MOEQ_MAX_DIMS:
            raise argument_error(f"shape: expected at most {capi.MOEQ_MAX_DIMS} dims, "
                                 f"got {self.shape}")
        native.ndim = len(self.shape)
        native.shape = self.shape
        native.dtype = DTYPES[self.dtype]
        for name, buffer in self.buffers.items():
            buffer.order_before(stream)
            setattr(native, name, buffer._held.dl_tensor())
        return native

    def to_bnb_state_dict(self, prefix="weight"):
        """bitsandbytes' state-dict entries (`prefix`, `prefix.absmax`, `prefix.quant_map`,
        ..., `prefix.quant_state.bitsandbytes__<format>`) as moeq.Tensor objects; the
        quantized buffers are shared, not copied."""
        from ._bnb import to_bnb_state_dict

        return to_bnb_state_dict(self, prefix)

    @staticmethod
    def from_bnb_state_dict(state, prefix="weight", stream=None):
        """The QTensor of bitsandbytes' state-dict entries under `prefix` (any DLPack
        tensors, e.g. torch tensors from a safetensors file), sharing their memory."""
        from ._bnb import from_bnb_state_dict

        return from_bnb_state_dict(state, prefix, stream)

    @staticmethod
    def from_bnb(weight, quant_state=None, stream=None):
        """The QTensor of a bitsandbytes Params4bit (or packed data plus its QuantState),
        sharing its memory."""
        from ._bnb import from_bnb

        return from_bnb(weight, quant_state, stream)
