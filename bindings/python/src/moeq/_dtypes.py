"""Element types and devices: DLPack codes <-> the names the package uses ("bfloat16", "cuda:0")."""

from ._errors import argument_error

# name -> DLDataType (code, bits, lanes); codes: 0 int, 1 uint, 2 float, 4 bfloat, 6 bool.
DTYPES = {
    "float32": (2, 32, 1),
    "float16": (2, 16, 1),
    "bfloat16": (4, 16, 1),
    "float64": (2, 64, 1),
    "int64": (0, 64, 1),
    "int32": (0, 32, 1),
    "int16": (0, 16, 1),
    "int8": (0, 8, 1),
    "uint16": (1, 16, 1),
    "uint8": (1, 8, 1),
    "bool": (6, 8, 1),
}
DTYPE_NAMES = {code: name for name, code in DTYPES.items()}
FLOAT_DTYPES = ("float32", "float16", "bfloat16")

# DLPack device types moeq uses; pinned and managed memory count as host and CUDA.
CPU, CUDA, CUDA_HOST, CUDA_MANAGED = 1, 2, 3, 13
DEVICE_KINDS = {CPU: "cpu", CUDA: "cuda", CUDA_HOST: "cpu", CUDA_MANAGED: "cuda"}


def dtype_name(dtype, argument="dtype"):
    """The package's name for a dtype given as a name, a NumPy/ml_dtypes type or a torch.dtype."""
    if isinstance(dtype, str):
        name = dtype
    elif type(dtype).__module__ == "torch":
        name = str(dtype).removeprefix("torch.")
    else:
        name = getattr(dtype, "name", None) or getattr(dtype, "__name__", None)
    if name not in DTYPES:
        raise argument_error(f"{argument}: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    return name


def code_name(code):
    """The name of a DLDataType (code, bits, lanes) tuple."""
    return DTYPE_NAMES.get(tuple(code), f"dlpack{tuple(code)}")


def device_name(device):
    """"cpu" or "cuda:<id>" for a DLDevice (device_type, device_id) tuple."""
    kind = DEVICE_KINDS.get(device[0], f"dlpack_device{device[0]}")
    return "cpu" if kind == "cpu" else f"{kind}:{device[1]}"


def is_cuda(device):
    return DEVICE_KINDS.get(device[0]) == "cuda"
