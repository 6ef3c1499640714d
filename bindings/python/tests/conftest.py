"""Shared helpers of the moeq Python tests: NumPy dtypes, a float64 decoder, the golden vectors."""

import json
import pathlib
import tarfile

import ml_dtypes
import numpy as np
import pytest

import moeq

NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
GOLDEN_ARCHIVE = pathlib.Path(__file__).resolve().parents[3] / "tests/data/bnb_golden_public.tar.gz"


def to_numpy(tensor):
    """A moeq.Tensor as a NumPy array sharing its memory (bfloat16 through ml_dtypes)."""
    if tensor.dtype == "bfloat16":
        return np.from_dlpack(tensor.view("uint16")).view(ml_dtypes.bfloat16)
    return np.from_dlpack(tensor)


def decoded_absmax(q):
    """Each block's absmax, rebuilt in float32 from the (possibly nested) statistics."""
    absmax = to_numpy(q.absmax)
    if not q.nested:
        return absmax
    nested_code, nested_absmax = to_numpy(q.nested_code), to_numpy(q.nested_absmax)
    (offset,) = to_numpy(q.nested_offset)
    scale = np.repeat(nested_absmax, 256)[: absmax.size]
    return (nested_code[absmax] * scale + offset).astype(np.float32)


def decode_table(format):
    """FORMAT.md's code -> value tables; FP4 is sign/magnitude, so code 8 decodes to -0.0."""
    from moeq._bnb import NF4_CODE

    if format == "nf4":
        return np.array(NF4_CODE, dtype=np.float32)
    magnitudes = np.array([0, 0.0625, 8, 12, 4, 6, 2, 3], dtype=np.float32) / np.float32(12)
    return np.concatenate([magnitudes, -magnitudes])


def decode_with_numpy(q):
    """FORMAT.md's dequantization, written independently of the library: float32 values."""
    packed = to_numpy(q.packed).reshape(-1)
    codes = np.stack([packed >> 4, packed & 15], axis=1).reshape(-1)
    numel = int(np.prod(q.shape))
    table = decode_table(q.format)
    absmax = np.repeat(decoded_absmax(q), q.blocksize)[:numel]
    return (table[codes[:numel]] * absmax).astype(np.float32).reshape(q.shape)


def golden_case_names():
    with tarfile.open(GOLDEN_ARCHIVE) as archive:
        index = archive.extractfile("bnb_golden_public/index.json")
        return json.load(index)["cases"]


@pytest.fixture(scope="session")
def golden_dir(tmp_path_factory):
    target = tmp_path_factory.mktemp("golden")
    with tarfile.open(GOLDEN_ARCHIVE) as archive:
        # The "data" filter (Python >= 3.11.4 / 3.12) refuses unsafe members; the archive is
        # ours, so older Pythons (Debian bookworm's 3.11.2) extract it as it is.
        if hasattr(tarfile, "data_filter"):
            archive.extractall(target, filter="data")
        else:
            archive.extractall(target)
    return target / "bnb_golden_public"


def load_golden_case(golden_dir, name):
    """manifest.json plus each .bin file as a NumPy array of its dtype."""
    folder = golden_dir / name
    manifest = json.loads((folder / "manifest.json").read_text())
    dtype = NUMPY_DTYPES[manifest["dtype"]]
    dtypes = {"input": dtype, "dequantized": dtype, "packed": np.uint8,
              "absmax": np.uint8 if manifest["nested"] else np.float32}
    arrays = {key: np.fromfile(folder / file, dtype=dtypes.get(key, np.float32))
              for key, file in manifest["files"].items()}
    arrays["input"] = arrays["input"].reshape(manifest["shape"])
    arrays["dequantized"] = arrays["dequantized"].reshape(manifest["shape"])
    return manifest, arrays


def random_array(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(NUMPY_DTYPES[dtype])


def error_names(error_info, *words):
    """Whether a raised moeq error's message names every word."""
    return all(word in error_info.value.message for word in words)


@pytest.fixture
def small_weight():
    """A [E=3, N=8, K=64] NF4 weight, its float32 decoding and the source array."""
    source = random_array((3, 8, 64), "float32", seed=1)
    q = moeq.quantize(source)
    return q, decode_with_numpy(q)
