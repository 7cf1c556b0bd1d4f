"""qkcapture: write (and read back) QK captures for the qkcat catalog.

A capture holds, per prompt, the query vector at one position and key vectors at selected
positions for every captured layer and head, with token strings and feature labels. See
`CaptureWriter` and `read_capture`.
"""
from .dtypes import bf16_bits_to_float32, float32_to_bf16_bits
from .errors import CaptureError
from .reader import Capture, Tensors, read_capture
from .writer import FORMAT, VERSION, CaptureWriter

__version__ = "0.1.0"

__all__ = [
    "CaptureError",
    "CaptureWriter",
    "Capture",
    "Tensors",
    "read_capture",
    "float32_to_bf16_bits",
    "bf16_bits_to_float32",
    "FORMAT",
    "VERSION",
    "__version__",
]
