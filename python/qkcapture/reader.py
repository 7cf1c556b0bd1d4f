"""Reading QK captures back: header, prompts, and tensors as float32 numpy arrays."""
from __future__ import annotations

import json
import math
import os
import struct
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Tuple

import numpy as np

from . import dtypes as _dt
from .errors import CaptureError
from .writer import FORMAT, VERSION


class _StoredTensor(NamedTuple):
    file: str
    dtype: str
    shape: Tuple[int, ...]
    data: np.ndarray  # memory-mapped, stored element type (BF16 as uint16)


class Tensors(Mapping):
    """Tensors of a capture by name; each access converts the memory-mapped data to float32.

    `raw(name)` gives the memory-mapped stored elements (BF16 as uint16 bits) and `dtype(name)`
    the stored dtype; `q(layer)` and `k(layer)` are shorthands.
    """

    def __init__(self, stored: Dict[str, _StoredTensor]):
        self._stored = stored

    def __getitem__(self, name: str) -> np.ndarray:
        item = self._stored[name]
        return _dt.decode(item.data, item.dtype)

    def __iter__(self) -> Iterator[str]:
        return iter(self._stored)

    def __len__(self) -> int:
        return len(self._stored)

    def raw(self, name: str) -> np.ndarray:
        return self._stored[name].data

    def dtype(self, name: str) -> str:
        return self._stored[name].dtype

    def q(self, layer: int) -> np.ndarray:
        return self[f"layers.{layer}.q"]

    def k(self, layer: int) -> np.ndarray:
        return self[f"layers.{layer}.k"]


class Capture(NamedTuple):
    """A capture read back: `header` (capture.json), `prompts` (one dict per line), `tensors`."""

    header: Dict[str, Any]
    prompts: List[Dict[str, Any]]
    tensors: Tensors


def _open_safetensors(path: str, name: str) -> Dict[str, _StoredTensor]:
    try:
        file_size = os.path.getsize(path)
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise CaptureError(name, "is too short to be a safetensors file")
            (header_size,) = struct.unpack("<Q", prefix)
            if header_size > file_size - 8:
                raise CaptureError(name, f"header size {header_size} runs past the end of the file ({file_size} bytes)")
            header = json.loads(f.read(header_size))
    except OSError as error:
        raise CaptureError(name, f"cannot be read: {error}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise CaptureError(name, f"header is not valid JSON: {error}") from None
    base = 8 + header_size
    data_size = file_size - base
    mapped = np.memmap(path, dtype=np.uint8, mode="r") if file_size > 0 else np.zeros(0, np.uint8)
    out = {}
    for tensor, info in header.items():
        if tensor == "__metadata__":
            continue
        field = f"{name}: tensor {tensor!r}"
        try:
            dtype = info["dtype"]
            shape = tuple(int(s) for s in info["shape"])
            start, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CaptureError(field, "needs dtype, shape and data_offsets") from None
        if dtype not in _dt.STORAGE:
            raise CaptureError(field, f"has dtype {dtype!r}; captures hold F32, F16, BF16 or F64")
        storage = _dt.STORAGE[dtype]
        if not 0 <= start <= end <= data_size:
            raise CaptureError(field, f"data_offsets [{start}, {end}] lie outside the data ({data_size} bytes)")
        if end - start != math.prod(shape) * storage.itemsize:
            raise CaptureError(field, f"holds {end - start} bytes, but shape {list(shape)} of {dtype} needs {math.prod(shape) * storage.itemsize}")
        data = mapped[base + start: base + end].view(storage).reshape(shape)
        out[tensor] = _StoredTensor(name, dtype, shape, data)
    return out


def _join_pieces(tensor: str, pieces: List[_StoredTensor]) -> _StoredTensor:
    """A tensor stored by rows in several files (shards joined by `merge`): its pieces in file order."""
    if len(pieces) == 1:
        return pieces[0]
    first = pieces[0]
    for piece in pieces[1:]:
        if piece.dtype != first.dtype or piece.shape[1:] != first.shape[1:]:
            raise CaptureError(f"{piece.file}: tensor {tensor!r}",
                               f"is a piece of a tensor also in {first.file}, but has dtype {piece.dtype} and shape "
                               f"{list(piece.shape)} where {first.file} has {first.dtype} and {list(first.shape)}; the "
                               "pieces of a tensor share its dtype and every axis but the first")
    data = np.concatenate([piece.data for piece in pieces])
    return _StoredTensor(", ".join(piece.file for piece in pieces), first.dtype, tuple(data.shape), data)


def read_capture(path: "os.PathLike[str] | str") -> Capture:
    """Read the capture directory at `path`, checking its header, prompts and tensor shapes.

    Tensors are memory-mapped; reading one (`capture.tensors["layers.3.q"]`) converts it to float32.
    """
    path = os.fspath(path)
    try:
        with open(os.path.join(path, "capture.json"), encoding="utf-8") as f:
            header = json.load(f)
    except OSError as error:
        raise CaptureError("capture.json", f"cannot be read: {error}") from None
    except ValueError as error:
        raise CaptureError("capture.json", f"is not valid JSON: {error}") from None
    if not isinstance(header, dict):
        raise CaptureError("capture.json", "must hold a JSON object")
    if header.get("format") != FORMAT:
        raise CaptureError("capture.json: format", f"must be {FORMAT!r}, got {header.get('format')!r}")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CaptureError("capture.json: version", f"must be an integer, got {version!r}")
    if version > VERSION:
        raise CaptureError("capture.json: version", f"capture format version {version} is newer than this qkcapture reads ({VERSION})")
    model = header.get("model")
    if not isinstance(model, dict):
        raise CaptureError("capture.json: model", "must be an object")
    for field in ("n_layers", "n_heads", "n_kv_heads", "d_head"):
        value = model.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise CaptureError(f"capture.json: model.{field}", f"must be a positive integer, got {value!r}")
    if model["n_heads"] % model["n_kv_heads"]:
        raise CaptureError("capture.json: model.n_kv_heads", "n_heads must be a multiple of n_kv_heads")
    layers = header.get("layers")
    if not isinstance(layers, list) or not all(isinstance(x, int) and 0 <= x < model["n_layers"] for x in layers):
        raise CaptureError("capture.json: layers", f"must be a list of layer numbers below n_layers, got {layers!r}")
    files = header.get("tensor_files")
    if not isinstance(files, list) or not files or not all(isinstance(x, str) for x in files):
        raise CaptureError("capture.json: tensor_files", f"must be a non-empty list of file names, got {files!r}")

    prompts = []
    try:
        with open(os.path.join(path, "prompts.jsonl"), encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    prompts.append(json.loads(line))
                except ValueError as error:
                    raise CaptureError(f"prompts.jsonl:{number}", f"is not valid JSON: {error}") from None
    except OSError as error:
        raise CaptureError("prompts.jsonl", f"cannot be read: {error}") from None
    key_count = sum(len(p.get("keys", [])) for p in prompts)

    pieces: Dict[str, List[_StoredTensor]] = {}
    for index, name in enumerate(files):
        parts = name.split("/")
        if name.startswith("/") or "" in parts or ".." in parts:
            raise CaptureError(f"capture.json: tensor_files[{index}]",
                               f"{name!r} must be a relative path inside the capture folder")
        for tensor, item in _open_safetensors(os.path.join(path, name), name).items():
            pieces.setdefault(tensor, []).append(item)
    stored = {tensor: _join_pieces(tensor, items) for tensor, items in pieces.items()}
    for layer in layers:
        for side, shape in (("q", (len(prompts), model["n_heads"], model["d_head"])),
                            ("k", (key_count, model["n_kv_heads"], model["d_head"]))):
            tensor = f"layers.{layer}.{side}"
            if tensor not in stored:
                raise CaptureError(f"tensor {tensor!r}", "is missing from every tensor file")
            if stored[tensor].shape != shape:
                raise CaptureError(f"{stored[tensor].file}: tensor {tensor!r}", f"has shape {list(stored[tensor].shape)}, expected {list(shape)}")
    return Capture(header, prompts, Tensors(stored))
