"""qkcapture: write (and read back) QK captures for the qkcat catalog.

A capture holds, per prompt, the query vector at one position and key vectors at selected
positions for every captured layer and head, with token strings and feature labels.

- `capture_hf(model, tokenizer, examples, path)` captures a Hugging Face transformers model
  (needs the `hf` extra: torch and transformers); `python -m qkcapture hf` does it from a shell.
- `CaptureWriter` writes vectors you computed yourself; `read_capture` reads a capture back.
- `Example` / `read_examples`: prompts described as text with character spans.
"""
from importlib.metadata import PackageNotFoundError, version as _package_version

from .capture import Batch, ModelShape, TokenizedPrompt, tokenize_example, write_capture
from .dtypes import bf16_bits_to_float32, float32_to_bf16_bits
from .errors import CaptureError
from .examples import Example, Target, read_examples
from .hf import capture_hf
from .reader import Capture, Tensors, read_capture
from .writer import FORMAT, VERSION, CaptureWriter

try:
    __version__ = _package_version("qkcapture")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "CaptureError",
    "CaptureWriter",
    "Capture",
    "Tensors",
    "read_capture",
    "capture_hf",
    "Example",
    "Target",
    "read_examples",
    "Batch",
    "ModelShape",
    "TokenizedPrompt",
    "tokenize_example",
    "write_capture",
    "float32_to_bf16_bits",
    "bf16_bits_to_float32",
    "FORMAT",
    "VERSION",
    "__version__",
]
