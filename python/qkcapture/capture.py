"""From examples to a capture, whatever library runs the model.

The shared half of every capture frontend (Hugging Face transformers today; TransformerLens,
nnsight and others build on the same pieces):

- `tokenize_example` maps an `Example`'s character spans to token positions with the
  tokenizer's offsets and checks every position, naming the example and field on error;
- `Batch` pads a few tokenized prompts on the right (so positions always index the unpadded
  prompt) and gathers, from a layer's full query/key states, the rows the capture keeps;
- `ModelShape` is what the capture header says about the model;
- `write_capture` drives a `Frontend` batch by batch and streams the vectors into a
  `CaptureWriter` (all or nothing: an error leaves nothing at the target path).

A frontend only runs the model: `extract(batch)` returns, for each captured layer, the query
vectors at the batch's query positions `[B, n_heads, d_head]` and the key vectors at its key
positions `[K, n_kv_heads, d_head]` (post-RoPE, per kv head, as float32 numpy arrays).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import (Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Sized, Tuple, Union)

try:  # Protocol is in typing from Python 3.8
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore[assignment,misc]

import numpy as np

from .errors import CaptureError
from .examples import TOKEN_CHOICES, Example, ExampleLike, Target, iter_examples, read_examples
from .writer import CaptureWriter

ExamplesSource = Union[Iterable[ExampleLike], "os.PathLike[str]", str]


# ------------------------------------------------------------------------------- tokenizing
@dataclass(frozen=True)
class TokenizedPrompt:
    """One example after tokenization: token ids and display strings, resolved positions, labels."""

    id: str
    input_ids: Tuple[int, ...]
    query_position: int
    query_labels: Dict[str, str]
    keys: Tuple[Dict[str, Any], ...]  # {"position": int, "labels": {...}} as CaptureWriter takes them

    @property
    def length(self) -> int:
        return len(self.input_ids)


def _model_max_length(tokenizer: Any) -> Optional[int]:
    value = getattr(tokenizer, "model_max_length", None)
    # Tokenizers without a known limit report a huge sentinel (int(1e30)).
    if isinstance(value, int) and 0 < value < 1_000_000:
        return value
    return None


def _encode(tokenizer: Any, text: str, max_length: Optional[int], span_field: Optional[str], example_id: str):
    """Token ids, and the offsets when `span_field` (the first target given by a char_span) says they are needed."""
    kwargs: Dict[str, Any] = {"add_special_tokens": True}
    if max_length is not None:
        kwargs.update(truncation=True, max_length=max_length)
    want_offsets = span_field is not None
    if want_offsets:
        # Slow (Python) tokenizers silently ignore return_offsets_mapping.
        if not getattr(tokenizer, "is_fast", False):
            raise CaptureError(
                span_field, f"{type(tokenizer).__name__} is a slow tokenizer: it gives no character offsets to map "
                "spans to tokens; load a fast one (AutoTokenizer.from_pretrained(..., use_fast=True)) or give "
                "token positions", example_id)
        kwargs["return_offsets_mapping"] = True
    encoded = tokenizer(text, **kwargs)
    ids = encoded["input_ids"]
    if ids and isinstance(ids[0], list):  # a batch of one
        ids = ids[0]
    offsets = encoded.get("offset_mapping") if want_offsets else None
    if offsets is not None and offsets and isinstance(offsets[0], list) and offsets[0] and isinstance(offsets[0][0], (list, tuple)):
        offsets = offsets[0]
    return [int(i) for i in ids], offsets


def _resolve(target: Target, where: str, example: Example, n_tokens: int, offsets, truncated_to: Optional[int],
             token: str) -> int:
    if target.position is not None:
        position = target.position + n_tokens if target.position < 0 else target.position
        if not 0 <= position < n_tokens:
            cut = f" after truncation to max_length={truncated_to}" if truncated_to is not None else ""
            raise CaptureError(f"{where}.position", f"{target.position} is past the prompt's {n_tokens} tokens{cut}",
                               example.id)
        return position
    start, end = target.char_span  # type: ignore[misc]
    hits = [i for i, (s, e) in enumerate(offsets) if e > s and s < end and e > start]
    if not hits:
        text = example.text[start:end]
        last_end = max((e for s, e in offsets if e > s), default=0)
        if truncated_to is not None and start >= last_end:
            why = f"the text was truncated to max_length={truncated_to} tokens, ending at character {last_end}"
        else:
            why = "no token covers these characters (whitespace, or a tokenizer that drops them)"
        raise CaptureError(f"{where}.char_span", f"{[start, end]} ({text!r}) overlaps no token: {why}", example.id)
    return hits[0] if (target.token or token) == "first" else hits[-1]


def tokenize_example(tokenizer: Any, example: Example, *, token: str = "last",
                     max_length: Optional[int] = None) -> TokenizedPrompt:
    """Tokenize one example (special tokens included) and resolve its query and key positions.

    A `char_span` maps to the tokens whose offsets overlap it, the last one unless the target or
    `token` says "first"; a `position` indexes the tokens (negative: from the end). `max_length`
    (default: the tokenizer's `model_max_length` when it has one) truncates the prompt.
    """
    if token not in TOKEN_CHOICES:
        raise CaptureError("token", f"must be 'last' or 'first', got {token!r}")
    if max_length is None:
        max_length = _model_max_length(tokenizer)
    named = [("query", example.query), *((f"keys[{j}]", key) for j, key in enumerate(example.keys))]
    span_field = next((example.field_name(f"{where}.char_span") for where, t in named if t.char_span is not None), None)
    ids, offsets = _encode(tokenizer, example.text, max_length, span_field, example.id)
    if not ids:
        raise CaptureError(example.field_name("text"), "the tokenizer made no token of this text", example.id)
    truncated_to = max_length if (max_length is not None and len(ids) >= max_length) else None
    query_position = _resolve(example.query, example.field_name("query"), example, len(ids), offsets, truncated_to,
                              token)
    keys = []
    for j, key in enumerate(example.keys):
        where = example.field_name(f"keys[{j}]")
        record: Dict[str, Any] = {"position": _resolve(key, where, example, len(ids), offsets, truncated_to, token)}
        if key.labels:
            record["labels"] = dict(key.labels)
        keys.append(record)
    return TokenizedPrompt(id=example.id, input_ids=tuple(ids), query_position=query_position,
                           query_labels=dict(example.query.labels), keys=tuple(keys))


def display_tokens(tokenizer: Any, input_ids: Sequence[int]) -> List[str]:
    """The display string of each token, as the tokenizer decodes it on its own."""
    return [str(t) for t in tokenizer.batch_decode([[int(i)] for i in input_ids], skip_special_tokens=False,
                                                   clean_up_tokenization_spaces=False)]


# -------------------------------------------------------------------------------- batching
class Batch:
    """A few tokenized prompts padded on the right into one `[B, T]` batch of torch tensors.

    Right padding keeps every prompt's positions equal to its unpadded positions (no shift of
    rotary or absolute position embeddings). `select_queries` / `select_keys` gather, from a
    layer's states over the whole batch, the query row of each prompt and its key rows in order.
    """

    def __init__(self, prompts: Sequence[TokenizedPrompt], pad_token_id: int = 0):
        import torch

        self.prompts = list(prompts)
        self.lengths = [p.length for p in self.prompts]
        width = max(self.lengths)
        ids = torch.full((len(self.prompts), width), int(pad_token_id), dtype=torch.long)
        mask = torch.zeros((len(self.prompts), width), dtype=torch.long)
        for row, prompt in enumerate(self.prompts):
            ids[row, :prompt.length] = torch.tensor(prompt.input_ids, dtype=torch.long)
            mask[row, :prompt.length] = 1
        self.input_ids = ids
        self.attention_mask = mask
        self.key_counts = [len(p.keys) for p in self.prompts]
        self._query_index = (torch.arange(len(self.prompts)),
                             torch.tensor([p.query_position for p in self.prompts], dtype=torch.long))
        key_rows = [row for row, p in enumerate(self.prompts) for _ in p.keys]
        key_positions = [key["position"] for p in self.prompts for key in p.keys]
        self._key_index = (torch.tensor(key_rows, dtype=torch.long), torch.tensor(key_positions, dtype=torch.long))
        self._on_device: Dict[Any, Tuple[Any, Any, Any, Any]] = {}

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def width(self) -> int:
        return int(self.input_ids.shape[1])

    def _indices(self, device):
        if device not in self._on_device:
            self._on_device[device] = (*(t.to(device) for t in self._query_index),
                                       *(t.to(device) for t in self._key_index))
        return self._on_device[device]

    def select_queries(self, states, layout: str = "bhtd"):
        """`states` `[B, heads, T, d]` (layout "bhtd") or `[B, T, heads, d]` ("bthd") → `[B, heads, d]`."""
        rows, positions, _, _ = self._indices(states.device)
        return states[rows, :, positions] if layout == "bhtd" else states[rows, positions]

    def select_keys(self, states, layout: str = "bhtd"):
        """`states` `[B, kv_heads, T, d]` ("bhtd") or `[B, T, kv_heads, d]` ("bthd") → `[K, kv_heads, d]`."""
        _, _, rows, positions = self._indices(states.device)
        return states[rows, :, positions] if layout == "bhtd" else states[rows, positions]


# --------------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class ModelShape:
    """What a capture header says about the model (see `CaptureWriter`)."""

    name: str
    checkpoint: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    positional: str
    attention_scale: Optional[float] = None


LayerVectors = Dict[int, Tuple[np.ndarray, np.ndarray]]


class Frontend(Protocol):
    """What `write_capture` needs of a library: the model's shape, and one batch's vectors."""

    shape: ModelShape
    layers: List[int]

    def extract(self, batch: Batch) -> LayerVectors:
        """Per captured layer: `(q [B, n_heads, d_head], k [K, n_kv_heads, d_head])`, float32 numpy."""
        ...


def _progress(total: Optional[int], enabled: Optional[bool]):
    """A tqdm bar on stderr when it is a terminal (or when asked), else nothing."""
    if enabled is None:
        enabled = sys.stderr.isatty() and "NO_COLOR" not in os.environ
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="prompt", desc="capture", file=sys.stderr, dynamic_ncols=True)


def _batches(examples: Iterable[Example], tokenizer: Any, batch_size: int, token: str,
             max_length: Optional[int]) -> Iterator[List[TokenizedPrompt]]:
    chunk: List[TokenizedPrompt] = []
    for example in examples:
        chunk.append(tokenize_example(tokenizer, example, token=token, max_length=max_length))
        if len(chunk) == batch_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def check_examples(examples: ExamplesSource, tokenizer: Any, *, token: str = "last",
                   max_length: Optional[int] = None) -> Tuple[int, List[str]]:
    """Check every example (structure, spans, positions) without running a model.

    Returns the number of examples and the label names they use, in order of first use.
    """
    count = 0
    names: Dict[str, None] = {}
    ids: Dict[str, int] = {}
    for index, example in enumerate(iter_examples(examples)):
        if example.id in ids:
            raise CaptureError(example.field_name("id"), f"{example.id!r} is also the id of example {ids[example.id]} "
                               "(0-based); ids must be unique", example.id)
        ids[example.id] = index
        tokenize_example(tokenizer, example, token=token, max_length=max_length)
        for target in (example.query, *example.keys):
            for name in target.labels:
                names.setdefault(name, None)
        count += 1
    if count == 0:
        raise CaptureError("examples", "there are no examples; nothing was written")
    return count, list(names)


def resolve_features(features: Optional[Mapping[str, Any]], seen: Sequence[str]) -> Dict[str, Any]:
    """The capture's features: those given, plus every other label name seen, of kind `semantic`."""
    resolved: Dict[str, Any] = dict(features or {})
    for name in seen:
        resolved.setdefault(name, {"kind": "semantic"})
    return resolved


def write_capture(frontend: Frontend, tokenizer: Any, examples: ExamplesSource, path: "os.PathLike[str] | str", *,
                  features: Optional[Mapping[str, Any]] = None, dtype: str = "bf16", batch_size: int = 8,
                  overwrite: bool = False, token: str = "last", max_length: Optional[int] = None,
                  dataset: Optional[Mapping[str, Any]] = None, progress: Optional[bool] = None,
                  pad_token_id: Optional[int] = None) -> str:
    """Run `frontend` over every example in batches and write the capture at `path`; returns the path.

    Every example is checked (and the label names gathered) before the model runs, when
    `examples` is a list or a JSONL path; an iterator is checked as it is consumed. Any error
    leaves nothing at `path`.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise CaptureError("batch_size", f"must be a positive integer, got {batch_size!r}")
    if max_length is None:
        max_length = _model_max_length(tokenizer)
    replayable = isinstance(examples, (str, os.PathLike, Sequence))
    if not replayable and features is None:
        examples = list(examples)  # the label names are needed before the first prompt is written
        replayable = True
    if replayable:
        total, seen = check_examples(examples, tokenizer, token=token, max_length=max_length)
    else:
        total, seen = (len(examples) if isinstance(examples, Sized) else None), []
    shape = frontend.shape
    if pad_token_id is None:
        pad_token_id = getattr(tokenizer, "pad_token_id", None)
        if pad_token_id is None:
            pad_token_id = 0  # any id: padded positions are masked and never read
    bar = _progress(total, progress)
    writer = CaptureWriter(
        path, model=shape.name, checkpoint=shape.checkpoint, n_layers=shape.n_layers, n_heads=shape.n_heads,
        n_kv_heads=shape.n_kv_heads, d_head=shape.d_head, layers=frontend.layers,
        features=resolve_features(features, seen), positional=shape.positional, dtype=dtype, dataset=dataset,
        overwrite=overwrite, attention_scale=shape.attention_scale)
    try:
        source = iter_examples(examples)
        for prompts in _batches(source, tokenizer, batch_size, token, max_length):
            batch = Batch(prompts, pad_token_id)
            vectors = frontend.extract(batch)
            _add_batch(writer, tokenizer, batch, vectors)
            if bar is not None:
                bar.update(len(prompts))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    return writer.path


def _add_batch(writer: CaptureWriter, tokenizer: Any, batch: Batch, vectors: LayerVectors) -> None:
    offset = 0
    for row, prompt in enumerate(batch.prompts):
        count = batch.key_counts[row]
        q = {layer: qs[row] for layer, (qs, _) in vectors.items()}
        k = {layer: ks[offset:offset + count] for layer, (_, ks) in vectors.items()}
        offset += count
        writer.add_prompt(prompt.id, tokens=display_tokens(tokenizer, prompt.input_ids),
                          query_position=prompt.query_position, query_labels=prompt.query_labels,
                          keys=list(prompt.keys), q=q, k=k)
