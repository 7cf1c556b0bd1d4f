"""Examples: prompts described as text, with the query and the keys given by character spans.

An example is a dict (one line of an examples JSONL file) or an `Example`::

    {"id": "p0", "text": "apple, dog, pear. Which are fruits?",
     "query": {"char_span": [27, 33], "labels": {"category": "fruit"}},
     "keys": [{"char_span": [0, 5], "labels": {"category": "fruit", "order": "0"}},
              {"char_span": [7, 10], "labels": {"category": "animal", "order": "1"}},
              {"position": 1}]}

A target (the query or a key) names either a `char_span` `[start, end)` of `text`, which maps to
the token(s) it overlaps (the last one unless `"token": "first"`), or a token `position` (0-based,
special tokens included; negative counts from the end). This module only parses and checks the
structure; mapping spans to tokens needs a tokenizer (`qkcapture.tokenize`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from .errors import CaptureError

TOKEN_CHOICES = ("last", "first")
_TARGET_FIELDS = ("char_span", "position", "labels", "token")
_EXAMPLE_FIELDS = ("id", "text", "query", "keys")


@dataclass(frozen=True)
class Target:
    """Where the query or one key sits: a character span of the text, or a token position."""

    char_span: Optional[Tuple[int, int]] = None
    position: Optional[int] = None
    labels: Dict[str, str] = field(default_factory=dict)
    token: Optional[str] = None  # "last" or "first" token of a span; None: the capture's default


@dataclass(frozen=True)
class Example:
    """One prompt: its text, the query, and the keys (see the module documentation)."""

    id: str
    text: str
    query: Target
    keys: Tuple[Target, ...] = ()
    # Where the example came from, for error messages: "examples[3]" or "examples.jsonl:4".
    location: Optional[str] = field(default=None, compare=False, repr=False)

    def field_name(self, name: str) -> str:
        """`name` prefixed with the example's location: `examples[3].keys[1]`, `examples.jsonl:4: keys[1]`."""
        if self.location is None:
            return name
        return f"{self.location}.{name}" if self.location.endswith("]") else f"{self.location}: {name}"


ExampleLike = Union[Example, Mapping[str, Any]]


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _target(value: Any, where: str, example_id: Optional[str]) -> Target:
    if isinstance(value, Target):
        raw: Mapping[str, Any] = {"char_span": value.char_span, "position": value.position,
                                  "labels": value.labels, "token": value.token}
    elif isinstance(value, Mapping):
        unknown = [str(k) for k in value if k not in _TARGET_FIELDS]
        if unknown:
            raise CaptureError(where, f"unknown field(s) {sorted(unknown)}; allowed: {', '.join(_TARGET_FIELDS)}",
                               example_id)
        raw = value
    else:
        raise CaptureError(where, f"must be a dict with 'char_span' or 'position' (and optional 'labels'), "
                           f"got {value!r}", example_id)
    span, position = raw.get("char_span"), raw.get("position")
    if (span is None) == (position is None):
        raise CaptureError(where, "must have exactly one of 'char_span' [start, end] or 'position'", example_id)
    if span is not None:
        if (isinstance(span, (str, bytes)) or not isinstance(span, (list, tuple)) or len(span) != 2
                or not all(_is_int(x) for x in span)):
            raise CaptureError(f"{where}.char_span", f"must be [start, end] with two integers, got {span!r}",
                               example_id)
        span = (int(span[0]), int(span[1]))
        if not 0 <= span[0] < span[1]:
            raise CaptureError(f"{where}.char_span", f"must satisfy 0 <= start < end, got {list(span)}", example_id)
    if position is not None:
        if not _is_int(position):
            raise CaptureError(f"{where}.position", f"must be an integer, got {position!r}", example_id)
        position = int(position)
    labels = raw.get("labels")
    if labels is None:
        labels = {}
    if not isinstance(labels, Mapping):
        raise CaptureError(f"{where}.labels", f"must be a dict of feature name -> value, got {labels!r}", example_id)
    for name, label in labels.items():
        if not isinstance(name, str) or not name:
            raise CaptureError(f"{where}.labels", f"label names must be non-empty strings, got {name!r}", example_id)
        if not isinstance(label, str):
            raise CaptureError(f"{where}.labels[{name!r}]", f"label values must be strings, got {label!r}; "
                               "use str(...)", example_id)
    token = raw.get("token")
    if token is not None and token not in TOKEN_CHOICES:
        raise CaptureError(f"{where}.token", f"must be 'last' or 'first', got {token!r}", example_id)
    return Target(char_span=span, position=position, labels=dict(labels), token=token)


def as_example(value: ExampleLike, index: int = 0, source: Optional[str] = None) -> Example:
    """Check one example (a dict or an `Example`) and return it as an `Example`.

    `index` (0-based) and `source` (a file name) only make error messages point at it: the
    error's `field` is `examples[3].keys[1].char_span`, or `examples.jsonl:4: keys[1].char_span`.
    """
    base = f"{source}:{index + 1}" if source else f"examples[{index}]"
    prefix = f"{base}: " if source else f"{base}."
    if isinstance(value, Example):
        raw: Mapping[str, Any] = {"id": value.id, "text": value.text, "query": value.query, "keys": value.keys}
    elif isinstance(value, Mapping):
        raw = value
    else:
        raise CaptureError(base, f"an example must be a dict (or qkcapture.Example), got {type(value).__name__}")
    example_id = raw.get("id")
    if not isinstance(example_id, str) or not example_id:
        raise CaptureError(f"{prefix}id", f"must be a non-empty string, got {example_id!r}")
    unknown = [str(k) for k in raw if k not in _EXAMPLE_FIELDS]
    if unknown:
        raise CaptureError(base, f"unknown field(s) {sorted(unknown)}; "
                           f"allowed: {', '.join(_EXAMPLE_FIELDS)}", example_id)
    text = raw.get("text")
    if not isinstance(text, str):
        raise CaptureError(f"{prefix}text", f"must be a string, got {text!r}", example_id)
    if "query" not in raw:
        raise CaptureError(f"{prefix}query", "is missing", example_id)
    query = _target(raw["query"], f"{prefix}query", example_id)
    keys_value = raw.get("keys", ())
    if isinstance(keys_value, (str, bytes, Mapping)) or not isinstance(keys_value, (list, tuple)):
        raise CaptureError(f"{prefix}keys", f"must be a list of targets, got {keys_value!r}", example_id)
    keys = tuple(_target(key, f"{prefix}keys[{j}]", example_id) for j, key in enumerate(keys_value))
    for where, target in [("query", query), *((f"keys[{j}]", key) for j, key in enumerate(keys))]:
        if target.char_span is not None and target.char_span[1] > len(text):
            raise CaptureError(f"{prefix}{where}.char_span", f"{list(target.char_span)} runs past the end of the "
                               f"text ({len(text)} characters)", example_id)
    return Example(id=example_id, text=text, query=query, keys=keys, location=base)


def read_examples(path: "os.PathLike[str] | str") -> Iterator[Example]:
    """The examples of a JSON Lines file, one object per line (blank lines skipped), checked one by one.

    Errors name the file and the line: `examples.jsonl:4: keys[1].char_span: ...`.
    """
    name = os.fspath(path)
    try:
        handle = open(name, encoding="utf-8")
    except OSError as error:
        raise CaptureError("examples", f"cannot read {name}: {error.strerror or error}") from None
    with handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as error:
                raise CaptureError(f"{name}:{number + 1}", f"not valid JSON: {error}") from None
            yield as_example(value, number, source=name)


def iter_examples(examples: Union[Iterable[ExampleLike], "os.PathLike[str]", str]) -> Iterator[Example]:
    """Examples from a JSONL path, or checked one by one from an iterable of dicts / `Example`s."""
    if isinstance(examples, (str, os.PathLike)):
        yield from read_examples(examples)
        return
    if isinstance(examples, Mapping):
        raise CaptureError("examples", "must be a list of examples (dicts), or a path to a JSONL file; got one dict")
    try:
        iterator = iter(examples)
    except TypeError:
        raise CaptureError("examples", f"must be a list of examples or a path, got {type(examples).__name__}") from None
    for index, value in enumerate(iterator):
        yield as_example(value, index)


def label_names(examples: Iterable[Example]) -> List[str]:
    """Every label name used by the query or a key of the examples, in order of first use."""
    seen: Dict[str, None] = {}
    for example in examples:
        for target in (example.query, *example.keys):
            for name in target.labels:
                seen.setdefault(name, None)
    return list(seen)
