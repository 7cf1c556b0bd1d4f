"""Streaming writer of QK captures (capture format version 1).

Each prompt's tensors are converted to the capture dtype at once and appended to one spool file
per layer and side inside a hidden working directory next to the target; leaving the `with`
block assembles the safetensors file from the spools, writes `capture.json` last and renames the
working directory into place. Memory therefore depends on one prompt's tensors, never on the
number of prompts, and an exception (or a crash) leaves no directory that looks like a capture.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import struct
import warnings
import weakref
from numbers import Integral
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from . import dtypes as _dt
from .errors import CaptureError

FORMAT = "qk-capture"
VERSION = 1
POSITIONAL_KINDS = ("post-rope", "pre-rope", "none")
DEFAULT_TENSOR_FILE = "activations.safetensors"
_SPOOL_BUFFER = 1 << 16
_COPY_CHUNK = 1 << 24
_MISSING: Any = object()
_LEGACY_POSITIONAL = ("tokens", "query_position", "query_labels", "keys", "q", "k")


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _positive_int(value: Any, field: str) -> int:
    if not _is_int(value) or int(value) <= 0:
        raise CaptureError(field, f"must be a positive integer, got {value!r}")
    return int(value)


def _make_work_dir(parent: str, name: str) -> str:
    """A new hidden directory next to the target, with the permissions the umask gives any directory.

    `tempfile.mkdtemp` makes it 0700, and reading the umask means flipping it (a race with other
    threads); `os.mkdir(..., 0o777)` lets the kernel apply the umask itself.
    """
    for _ in range(100):
        candidate = os.path.join(parent, f".{name}.partial-{secrets.token_hex(6)}")
        try:
            os.mkdir(candidate, 0o777)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a working directory next to {os.path.join(parent, name)}")


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class CaptureWriter:
    """Write a QK capture directory one prompt at a time.

    ::

        with CaptureWriter("out/capture", model="gpt2", checkpoint="main", n_layers=12,
                           n_heads=12, n_kv_heads=12, d_head=64, layers=[3, 5],
                           features={"category": {"kind": "semantic"}},
                           positional="none", dtype="bf16") as w:
            w.add_prompt("p0", tokens=tokens, query_position=query_position,
                         query_labels={"category": "fruit"},
                         keys=[{"position": 4, "labels": {"category": "fruit"}}], q={3: q3, 5: q5},
                         k={3: k3, 5: k5})

    `q[L]` has shape `[n_heads, d_head]`, `k[L]` shape `[len(keys), n_kv_heads, d_head]`, for
    every captured layer `L` (a mapping keyed by layer, or one array stacked in `layers` order).
    """

    def __init__(
        self,
        path: "os.PathLike[str] | str",
        *,
        model: str,
        checkpoint: str,
        n_layers: int,
        n_heads: int,
        n_kv_heads: int,
        d_head: int,
        layers: Iterable[int],
        features: Mapping[str, Any],
        positional: str = "post-rope",
        dtype: str = "bf16",
        dataset: Optional[Mapping[str, Any]] = None,
        tensor_file: str = DEFAULT_TENSOR_FILE,
        overwrite: bool = False,
        attention_scale: Optional[float] = None,
    ):
        self.path = os.path.abspath(os.fspath(path))
        if not isinstance(model, str) or not model:
            raise CaptureError("model", f"must be a non-empty string, got {model!r}")
        if not isinstance(checkpoint, str) or not checkpoint:
            raise CaptureError("checkpoint", f"must be a non-empty string, got {checkpoint!r}")
        self.model = model
        self.checkpoint = checkpoint
        self.n_layers = _positive_int(n_layers, "n_layers")
        self.n_heads = _positive_int(n_heads, "n_heads")
        self.n_kv_heads = _positive_int(n_kv_heads, "n_kv_heads")
        self.d_head = _positive_int(d_head, "d_head")
        if self.n_heads % self.n_kv_heads != 0:
            raise CaptureError(
                "n_kv_heads", f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})"
            )
        self.layers = self._check_layers(layers)
        self.features = self._check_features(features)
        if positional not in POSITIONAL_KINDS:
            raise CaptureError("positional", f"must be one of {', '.join(POSITIONAL_KINDS)}, got {positional!r}")
        self.positional = positional
        try:
            self.dtype = _dt.canonical_dtype(dtype)
        except (TypeError, ValueError) as error:
            raise CaptureError("dtype", str(error)) from None
        if dataset is not None:
            if not isinstance(dataset, Mapping):
                raise CaptureError("dataset", f"must be a JSON object (a dict) or None, got {type(dataset).__name__}")
            try:
                dataset = json.loads(json.dumps(dataset, allow_nan=False))
            except (TypeError, ValueError) as error:
                raise CaptureError("dataset", f"is not JSON-serializable: {error}") from None
        self.dataset = dataset
        if (not isinstance(tensor_file, str) or not tensor_file.endswith(".safetensors")
                or os.path.basename(tensor_file) != tensor_file or tensor_file.startswith(".")):
            raise CaptureError("tensor_file", f"must be a plain file name ending in .safetensors, got {tensor_file!r}")
        self.tensor_file = tensor_file
        if attention_scale is not None:
            if (not isinstance(attention_scale, (int, float)) or isinstance(attention_scale, bool)
                    or not math.isfinite(attention_scale) or attention_scale <= 0):
                raise CaptureError("attention_scale", f"must be a positive finite number or None, got {attention_scale!r}")
            attention_scale = float(attention_scale)
        self.attention_scale = attention_scale
        self.overwrite = bool(overwrite)
        self._check_target()

        self._layer_index = {layer: i for i, layer in enumerate(self.layers)}
        self._ids: set = set()
        self.prompt_count = 0
        self.key_count = 0
        self._state = "open"

        parent = os.path.dirname(self.path)
        os.makedirs(parent, exist_ok=True)
        self._work = _make_work_dir(parent, os.path.basename(self.path))
        # Removes the working directory if the writer is dropped without close() or abort().
        self._cleanup = weakref.finalize(self, _remove_tree, self._work)
        try:
            self._prompts_file = open(os.path.join(self._work, "prompts.jsonl"), "wb")
            self._q_spools = [self._open_spool(layer, "q") for layer in self.layers]
            self._k_spools = [self._open_spool(layer, "k") for layer in self.layers]
        except BaseException:
            self.abort()
            raise

    # ----------------------------------------------------------------------------- validation
    def _check_layers(self, layers: Iterable[int]) -> List[int]:
        try:
            values = list(layers)
        except TypeError:
            raise CaptureError("layers", f"must be a list of layer numbers, got {layers!r}") from None
        if not values:
            raise CaptureError("layers", "must name at least one layer")
        seen = set()
        for value in values:
            if not _is_int(value):
                raise CaptureError("layers", f"layer numbers must be integers, got {value!r}")
            if not 0 <= int(value) < self.n_layers:
                raise CaptureError("layers", f"layer {value} is outside 0..{self.n_layers - 1} (n_layers = {self.n_layers})")
            if int(value) in seen:
                raise CaptureError("layers", f"layer {value} is listed twice")
            seen.add(int(value))
        return sorted(seen)

    @staticmethod
    def _check_features(features: Mapping[str, Any]) -> Dict[str, Dict[str, str]]:
        if not isinstance(features, Mapping):
            raise CaptureError("features", f"must be a dict of feature name -> {{'kind': ...}}, got {type(features).__name__}")
        checked: Dict[str, Dict[str, str]] = {}
        for name, spec in features.items():
            field = f"features[{name!r}]"
            if not isinstance(name, str) or not name:
                raise CaptureError("features", f"feature names must be non-empty strings, got {name!r}")
            if isinstance(spec, str):
                spec = {"kind": spec}
            if not isinstance(spec, Mapping):
                raise CaptureError(field, f"must be a dict with 'kind' (and optionally 'description'), got {spec!r}")
            unknown = set(spec) - {"kind", "description"}
            if unknown:
                raise CaptureError(field, f"unknown field(s) {sorted(map(str, unknown))}; only 'kind' and 'description' are allowed")
            kind = spec.get("kind")
            if not isinstance(kind, str) or not kind:
                raise CaptureError(f"{field}.kind", f"must be a non-empty string such as 'semantic' or 'binding', got {kind!r}")
            entry = {"kind": kind}
            if spec.get("description") is not None:
                if not isinstance(spec["description"], str):
                    raise CaptureError(f"{field}.description", f"must be a string, got {spec['description']!r}")
                entry["description"] = spec["description"]
            checked[name] = entry
        return checked

    def _check_target(self) -> None:
        if os.path.lexists(self.path):
            if not os.path.isdir(self.path):
                raise CaptureError("path", f"{self.path} exists and is not a directory")
            if os.listdir(self.path) and not self.overwrite:
                raise CaptureError("path", f"{self.path} exists and is not empty; pass overwrite=True to replace it")

    def _check_labels(self, labels: Any, field: str, prompt: str) -> Dict[str, str]:
        if labels is None:
            return {}
        if not isinstance(labels, Mapping):
            raise CaptureError(field, f"must be a dict of feature name -> value, got {type(labels).__name__}", prompt)
        checked = {}
        for name, value in labels.items():
            if not isinstance(name, str):
                raise CaptureError(field, f"label names must be strings, got {name!r}", prompt)
            if name not in self.features:
                declared = ", ".join(sorted(self.features)) or "none"
                raise CaptureError(field, f"label {name!r} is not a declared feature (declared: {declared})", prompt)
            if not isinstance(value, str):
                raise CaptureError(f"{field}[{name!r}]", f"label values must be strings, got {value!r}; use str(...)", prompt)
            checked[name] = value
        return checked

    def _stack(self, arrays: Any, side: str, row_shape: Sequence[int], prompt: str) -> np.ndarray:
        """Gather one prompt's per-layer arrays into one float array [len(layers), *row_shape]."""
        count = len(self.layers)
        if isinstance(arrays, Mapping):
            missing = [layer for layer in self.layers if layer not in arrays]
            if missing:
                raise CaptureError(side, f"no array for layer(s) {missing}", prompt)
            extra = [layer for layer in arrays if layer not in self._layer_index]
            if extra:
                raise CaptureError(side, f"layer(s) {extra} are not among the captured layers {self.layers}", prompt)
            items = [(layer, arrays[layer]) for layer in self.layers]
        elif isinstance(arrays, (np.ndarray, list, tuple)) or hasattr(arrays, "__array__"):
            stacked = np.asarray(arrays)
            if stacked.ndim != len(row_shape) + 1 or stacked.shape[0] != count:
                raise CaptureError(
                    side, f"must map each layer to an array, or be one array of shape "
                    f"{[count, *row_shape]} stacked in layer order; got shape {list(stacked.shape)}", prompt)
            items = [(layer, stacked[i]) for i, layer in enumerate(self.layers)]
        else:
            raise CaptureError(side, f"must be a dict layer -> array, got {type(arrays).__name__}", prompt)
        out = np.empty((count, *row_shape), dtype=np.float64 if self.dtype == "F64" else np.float32)
        for i, (layer, array) in enumerate(items):
            field = f"{side}[layer {layer}]"
            try:
                array = np.asarray(array)
            except Exception as error:  # e.g. a CUDA or bfloat16 torch tensor
                raise CaptureError(field, f"cannot be read as a numpy array ({error}); pass x.float().cpu().numpy()", prompt) from None
            if array.dtype.kind not in "fiu" or array.dtype == np.bool_:
                raise CaptureError(field, f"must hold real numbers, got dtype {array.dtype}", prompt)
            if tuple(array.shape) != tuple(row_shape):
                raise CaptureError(field, f"has shape {list(array.shape)}, expected {list(row_shape)}", prompt)
            out[i] = array
        return out

    def _encode(self, values: np.ndarray, side: str, prompt: str) -> np.ndarray:
        stored, finite = _dt.encode_finite(values, self.dtype)
        if not finite:
            with np.errstate(over="ignore", invalid="ignore"):
                bad = _dt.nonfinite_mask(_dt.encode(values, self.dtype), self.dtype)
            index = [int(i) for i in np.argwhere(bad)[0]]
            layer = self.layers[index[0]]
            original = float(values[tuple(index)])
            what = "non-finite value" if not math.isfinite(original) else f"value {original!r} overflows {self.dtype}"
            raise CaptureError(f"{side}[layer {layer}]", f"{what} at index {index[1:]}", prompt)
        return stored

    # ------------------------------------------------------------------------------ writing
    def _open_spool(self, layer: int, side: str):
        return open(os.path.join(self._work, f".spool.{layer}.{side}"), "wb", buffering=_SPOOL_BUFFER)

    def add_prompt(
        self,
        prompt_id: str,
        *args: Any,
        tokens: Sequence[str] = _MISSING,  # type: ignore[assignment]
        query_position: int = _MISSING,  # type: ignore[assignment]
        query_labels: Optional[Mapping[str, str]] = None,
        keys: Sequence[Mapping[str, Any]] = _MISSING,  # type: ignore[assignment]
        q: Any = _MISSING,
        k: Any = _MISSING,
    ) -> None:
        """Append one prompt: its tokens, query position and labels, keys, and q/k of every captured layer.

        ``add_prompt(prompt_id, *, tokens, query_position, query_labels=None, keys, q, k)``. The
        positional form of earlier releases, ``add_prompt(id, tokens, query_position, query_labels,
        keys, q, k)``, still works for this release with a `DeprecationWarning`.
        """
        if args:
            if len(args) != len(_LEGACY_POSITIONAL):
                raise TypeError(
                    "add_prompt() takes the prompt id, then keyword arguments: "
                    "add_prompt(prompt_id, *, tokens=..., query_position=..., query_labels=..., keys=..., q=..., k=...)")
            warnings.warn(
                "add_prompt(id, tokens, query_position, query_labels, keys, q, k) with positional arguments is "
                "deprecated; pass them by keyword: add_prompt(prompt_id, tokens=..., query_position=..., "
                "query_labels=..., keys=..., q=..., k=...)", DeprecationWarning, stacklevel=2)
            tokens, query_position, query_labels, keys, q, k = args
        missing = [name for name, value in (("tokens", tokens), ("query_position", query_position),
                                            ("keys", keys), ("q", q), ("k", k)) if value is _MISSING]
        if missing:
            raise TypeError(f"add_prompt() missing keyword argument(s): {', '.join(missing)}")
        id = prompt_id
        if self._state != "open":
            raise CaptureError("writer", f"is {self._state}; no more prompts can be added")
        if not isinstance(id, str) or not id:
            raise CaptureError("id", f"must be a non-empty string, got {id!r}")
        prompt = id
        if prompt in self._ids:
            raise CaptureError("id", "is already used by an earlier prompt; ids must be unique", prompt)
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
            raise CaptureError("tokens", "must be a list of token strings", prompt)
        tokens = list(tokens)
        if not tokens:
            raise CaptureError("tokens", "must not be empty", prompt)
        for i, token in enumerate(tokens):
            if not isinstance(token, str):
                raise CaptureError(f"tokens[{i}]", f"must be a string, got {token!r}", prompt)
        if not _is_int(query_position) or not 0 <= int(query_position) < len(tokens):
            raise CaptureError("query_position", f"must be an integer in 0..{len(tokens) - 1}, got {query_position!r}", prompt)
        query = {"position": int(query_position)}
        labels = self._check_labels(query_labels, "query_labels", prompt)
        if labels:
            query["labels"] = labels
        if isinstance(keys, (str, bytes, Mapping)) or not isinstance(keys, Sequence):
            raise CaptureError("keys", "must be a list of {'position': int, 'labels': {...}} dicts", prompt)
        key_records = []
        for j, key in enumerate(keys):
            field = f"keys[{j}]"
            if not isinstance(key, Mapping):
                raise CaptureError(field, f"must be a dict with 'position' and optional 'labels', got {key!r}", prompt)
            unknown = set(key) - {"position", "labels"}
            if unknown:
                raise CaptureError(field, f"unknown field(s) {sorted(map(str, unknown))}; only 'position' and 'labels' are allowed", prompt)
            position = key.get("position")
            if not _is_int(position) or not 0 <= int(position) < len(tokens):
                raise CaptureError(f"{field}.position", f"must be an integer in 0..{len(tokens) - 1}, got {position!r}", prompt)
            record: Dict[str, Any] = {"position": int(position)}
            key_labels = self._check_labels(key.get("labels"), f"{field}.labels", prompt)
            if key_labels:
                record["labels"] = key_labels
            key_records.append(record)
        line = {"id": prompt, "tokens": tokens, "query": query, "keys": key_records}
        try:
            encoded_line = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        except UnicodeEncodeError as error:
            raise CaptureError("tokens", f"not valid Unicode text ({error.reason})", prompt) from None

        q_stored = self._encode(self._stack(q, "q", (self.n_heads, self.d_head), prompt), "q", prompt)
        k_stored = self._encode(self._stack(k, "k", (len(key_records), self.n_kv_heads, self.d_head), prompt), "k", prompt)

        # Everything is validated: from here on a failure (disk full) breaks the writer.
        try:
            self._prompts_file.write(encoded_line)
            for i in range(len(self.layers)):
                self._q_spools[i].write(memoryview(q_stored[i]).cast("B"))
                if key_records:
                    self._k_spools[i].write(memoryview(k_stored[i]).cast("B"))
        except BaseException:
            self.abort()
            self._state = "broken (a write failed; nothing was kept)"
            raise
        self._ids.add(prompt)
        self.prompt_count += 1
        self.key_count += len(key_records)

    def header(self) -> Dict[str, Any]:
        """The `capture.json` object this writer writes."""
        header: Dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "model": {
                "name": self.model,
                "checkpoint": self.checkpoint,
                "n_layers": self.n_layers,
                "n_heads": self.n_heads,
                "n_kv_heads": self.n_kv_heads,
                "d_head": self.d_head,
            },
            "positional": self.positional,
            "layers": list(self.layers),
            "tensor_files": [self.tensor_file],
            "features": self.features,
        }
        if self.attention_scale is not None:
            header["model"]["attention_scale"] = self.attention_scale
        if self.dataset is not None:
            header["dataset"] = self.dataset
        return header

    def _assemble_tensors(self) -> None:
        itemsize = _dt.STORAGE[self.dtype].itemsize
        entries = []  # (name, shape, spool path)
        for layer in self.layers:
            entries.append((f"layers.{layer}.q", [self.prompt_count, self.n_heads, self.d_head],
                            os.path.join(self._work, f".spool.{layer}.q")))
            entries.append((f"layers.{layer}.k", [self.key_count, self.n_kv_heads, self.d_head],
                            os.path.join(self._work, f".spool.{layer}.k")))
        header = {}
        offset = 0
        for name, shape, spool in entries:
            size = math.prod(shape) * itemsize
            actual = os.path.getsize(spool)
            if actual != size:  # a programming error, never user input
                raise RuntimeError(f"spool for {name} holds {actual} bytes, expected {size}")
            header[name] = {"dtype": self.dtype, "shape": shape, "data_offsets": [offset, offset + size]}
            offset += size
        header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
        header_bytes += b" " * (-len(header_bytes) % 8)  # the data starts 8-byte aligned
        with open(os.path.join(self._work, self.tensor_file), "wb") as out:
            out.write(struct.pack("<Q", len(header_bytes)))
            out.write(header_bytes)
            out.flush()
            for _, _, spool in entries:
                _append_file(out, spool)
                os.remove(spool)  # keeps the extra disk space at one spool

    def close(self) -> str:
        """Finish the capture: write the tensors and `capture.json`, move it into place; returns its path."""
        if self._state != "open":
            raise CaptureError("writer", f"is {self._state}; cannot close it")
        try:
            if self.prompt_count == 0:
                raise CaptureError("prompts", "no prompt was added; nothing was written")
            self._prompts_file.close()
            for spool in self._q_spools + self._k_spools:
                spool.close()
            self._assemble_tensors()
            with open(os.path.join(self._work, "capture.json"), "w", encoding="utf-8") as f:
                json.dump(self.header(), f, indent=2, ensure_ascii=False)
                f.write("\n")
            self._publish()
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        self._cleanup.detach()
        return self.path

    def _publish(self) -> None:
        self._check_target()
        old = None
        if os.path.isdir(self.path):
            if os.listdir(self.path):
                old = self._work + ".old"
                os.rename(self.path, old)
            else:
                os.rmdir(self.path)
        os.rename(self._work, self.path)
        if old is not None:
            _remove_tree(old)

    def abort(self) -> None:
        """Drop everything written so far; the target path is left untouched."""
        if self._state in ("closed", "aborted"):
            return
        for handle in [getattr(self, "_prompts_file", None), *getattr(self, "_q_spools", []), *getattr(self, "_k_spools", [])]:
            if handle is not None:
                try:
                    handle.close()
                except OSError:
                    pass
        _remove_tree(self._work)
        self._cleanup.detach()
        self._state = "aborted"

    def __enter__(self) -> "CaptureWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.abort()
            return False
        self.close()
        return False


def _append_file(out, path: str) -> None:
    """Append the file at `path` to the open binary file `out` (kernel copy when available)."""
    size = os.path.getsize(path)
    with open(path, "rb") as src:
        copied = 0
        if hasattr(os, "copy_file_range"):
            try:
                while copied < size:
                    n = os.copy_file_range(src.fileno(), out.fileno(), min(size - copied, 1 << 30))
                    if n == 0:
                        break
                    copied += n
            except OSError:
                # Not supported here (another filesystem, an old kernel): copy what is left by hand.
                pass
        if copied < size:
            src.seek(copied)
            out.seek(0, os.SEEK_END)
            shutil.copyfileobj(src, out, _COPY_CHUNK)
            out.flush()
