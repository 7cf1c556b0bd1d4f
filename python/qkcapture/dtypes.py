"""Element types of capture tensors and the conversions between them and float32.

bfloat16 has no numpy dtype, so it is stored as uint16 bit patterns: the upper half of an
IEEE float32. Conversion to bf16 rounds to nearest, ties to even, on the bits.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

#: Capture dtype name (safetensors spelling) -> numpy dtype of the stored elements.
STORAGE = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "F64": np.dtype("<f8"),
}

# The smallest float32 that rounds to bf16 infinity: halfway between bf16's largest finite
# value (0x7F7F) and the next step (2^128), i.e. the bit pattern 0x7F7F8000.
_BF16_OVERFLOW = np.array([0x7F7F8000], dtype=np.uint32).view(np.float32)[0]

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
    rounded = _round_finite_to_bf16(bits)
    is_nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    if is_nan.any():
        # Rounding would carry a NaN's payload into the sign or turn it into an infinity.
        quiet = ((bits >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
        rounded = np.where(is_nan, quiet, rounded)
    return rounded


def _round_finite_to_bf16(bits: np.ndarray) -> np.ndarray:
    """bf16 bits of float32 bit patterns `bits` (uint32), exact for every non-NaN input.

    Adding 0x7FFF plus the lowest kept bit rounds to nearest with ties to even; a carry into
    the exponent is exactly the rounding up to the next binade (or to infinity at the top).
    In-place steps keep it to one temporary array.
    """
    work = bits >> np.uint32(16)
    work &= np.uint32(1)
    work += np.uint32(0x7FFF)
    work += bits
    work >>= np.uint32(16)
    return work.astype(np.uint16)


def bf16_bits_to_float32(bits) -> np.ndarray:
    """Widen bfloat16 bit patterns (uint16) to float32, exactly."""
    wide = np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)
    return wide.view(np.float32)


def encode(values: np.ndarray, dtype: str) -> np.ndarray:
    """Convert float values to the stored representation of capture dtype `dtype` (canonical name)."""
    if dtype == "BF16":
        return float32_to_bf16_bits(values)
    return np.asarray(values).astype(STORAGE[dtype], copy=False)


def encode_finite(values: np.ndarray, dtype: str) -> Tuple[np.ndarray, bool]:
    """(stored representation, whether every stored value is finite), for the writer's hot path.

    Non-finite inputs and finite inputs that overflow the dtype both come out as False.
    """
    if dtype == "BF16":
        bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
        if not np.isfinite(bits.view(np.float32)).all():
            return float32_to_bf16_bits(bits.view(np.float32)), False
        stored = _round_finite_to_bf16(bits)
        # Only a finite value at the very top can round to infinity.
        return stored, not (np.abs(bits.view(np.float32)).max(initial=0.0) >= _BF16_OVERFLOW)
    with np.errstate(over="ignore", invalid="ignore"):
        stored = np.asarray(values).astype(STORAGE[dtype], copy=False)
    return stored, bool(np.isfinite(stored).all())


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
