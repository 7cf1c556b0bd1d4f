"""Element types of capture tensors and the conversions between them and float32.

bfloat16 has no numpy dtype, so it is stored as uint16 bit patterns: the upper half of an
IEEE float32. Conversion to bf16 rounds to nearest, ties to even, on the bits.
"""
from __future__ import annotations

import numpy as np

#: Capture dtype name (safetensors spelling) -> numpy dtype of the stored elements.
STORAGE = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "F64": np.dtype("<f8"),
}

_ALIASES = {
    "f32": "F32", "float32": "F32", "float": "F32",
    "f16": "F16", "float16": "F16", "half": "F16", "fp16": "F16",
    "bf16": "BF16", "bfloat16": "BF16",
    "f64": "F64", "float64": "F64", "double": "F64",
}


def canonical_dtype(name: str) -> str:
    """The safetensors name (`F32`, `F16`, `BF16`, `F64`) of a dtype given as `bf16`, `float16`, ..."""
    if not isinstance(name, str):
        raise TypeError(f"dtype must be a string such as 'bf16', not {type(name).__name__}")
    key = name.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(f"unknown dtype {name!r}; expected one of f32, f16, bf16, f64")


def float32_to_bf16_bits(x) -> np.ndarray:
    """Round float32 values to bfloat16 (nearest, ties to even); returns the uint16 bit patterns.

    NaN stays NaN (a quiet NaN with the input's sign), infinities stay infinite, and finite
    values beyond bf16's largest finite value round to infinity as IEEE rounding does.
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    # Adding 0x7FFF plus the lowest kept bit rounds to nearest with ties to even; the carry
    # may run into the exponent, which is exactly the correct rounding up to the next binade.
    lsb = (bits >> np.uint32(16)) & np.uint32(1)
    rounded = ((bits + np.uint32(0x7FFF) + lsb) >> np.uint32(16)).astype(np.uint16)
    is_nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    if is_nan.any():
        quiet = ((bits >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
        rounded = np.where(is_nan, quiet, rounded)
    return rounded


def bf16_bits_to_float32(bits) -> np.ndarray:
    """Widen bfloat16 bit patterns (uint16) to float32, exactly."""
    wide = np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)
    return wide.view(np.float32)


def encode(values: np.ndarray, dtype: str) -> np.ndarray:
    """Convert float values to the stored representation of capture dtype `dtype` (canonical name)."""
    if dtype == "BF16":
        return float32_to_bf16_bits(values)
    return np.asarray(values).astype(STORAGE[dtype], copy=False)


def decode(stored: np.ndarray, dtype: str) -> np.ndarray:
    """Convert stored elements of capture dtype `dtype` to float32 (F64 is narrowed)."""
    if dtype == "BF16":
        return bf16_bits_to_float32(stored)
    if dtype == "F32":
        return np.asarray(stored, dtype=np.float32)
    return np.asarray(stored).astype(np.float32)


def nonfinite_mask(stored: np.ndarray, dtype: str) -> np.ndarray:
    """True where a stored element is NaN or infinite (checked on the bits for F16/BF16)."""
    if dtype == "BF16":
        return (stored & np.uint16(0x7F80)) == np.uint16(0x7F80)
    if dtype == "F16":
        return (stored.view(np.uint16) & np.uint16(0x7C00)) == np.uint16(0x7C00)
    return ~np.isfinite(stored)
