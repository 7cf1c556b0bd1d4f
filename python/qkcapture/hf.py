"""Capture a Hugging Face `transformers` model (5.24) in one call: `capture_hf`.

transformers 5 sends every supported architecture's attention through one function looked up
in `AttentionInterface` by `config._attn_implementation`, and that function receives exactly
the vectors whose dot product is the attention score: queries `[B, n_heads, T, d_head]` and
keys `[B, n_kv_heads, T, d_head]` after the projections (biases included), q/k norms and the
(partial) rotary embedding, before grouped-query repetition, with the softmax scale passed
separately as `scaling`. During a capture the model's implementation (`eager`, or `sdpa` for
anything else) is swapped for a registered wrapper that gathers the query and key rows the
capture needs, then calls that same implementation, so the model computes what it always does.
The forward pass stops after the last captured layer.

Only architectures checked against their own attention probabilities are accepted (see
`SUPPORTED`); anything else is refused rather than captured wrongly.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .capture import Batch, ExamplesSource, LayerVectors, ModelShape, write_capture
from .errors import CaptureError

# model_type -> (attention module class, positional kind of the captured vectors)
SUPPORTED: Dict[str, Tuple[str, str]] = {
    "llama": ("LlamaAttention", "post-rope"),
    "mistral": ("MistralAttention", "post-rope"),
    "qwen2": ("Qwen2Attention", "post-rope"),
    "qwen3": ("Qwen3Attention", "post-rope"),
    "gemma2": ("Gemma2Attention", "post-rope"),
    "gemma3_text": ("Gemma3Attention", "post-rope"),
    "olmo2": ("Olmo2Attention", "post-rope"),
    "phi3": ("Phi3Attention", "post-rope"),
    "gpt_neox": ("GPTNeoXAttention", "post-rope"),
    "gpt2": ("GPT2Attention", "none"),
    "bert": ("BertSelfAttention", "none"),
}
TRANSFORMERS_VERSION = "5.24"
_IMPLEMENTATIONS = ("eager", "sdpa")
_RECORDER = "_qkcapture_recorder"


class _StopForward(Exception):
    """Raised inside the attention of the last captured layer: nothing after it is needed."""


def _registered_name(inner: str) -> str:
    return f"qkcapture_{inner}"


def _inner_function(module: Any, inner: str):
    if inner == "eager":
        # The family's own eager function (Gemma 2's soft-capping, GPT-2's defaults live there).
        return sys.modules[type(module).__module__].eager_attention_forward
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS[inner]


def _make_attention(inner: str):
    def recording_attention(module, query, key, value, attention_mask, *args, **kwargs):
        recorder = getattr(module, _RECORDER, None)
        if recorder is not None:
            recorder(module, query, key, kwargs.get("scaling"))
        return _inner_function(module, inner)(module, query, key, value, attention_mask, *args, **kwargs)

    recording_attention.__name__ = f"qkcapture_{inner}_attention"
    return recording_attention


def _register() -> None:
    """Register the recording wrappers (idempotent) under names of their own, with the inner masks."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

    for inner in _IMPLEMENTATIONS:
        name = _registered_name(inner)
        if name not in ALL_ATTENTION_FUNCTIONS:
            AttentionInterface.register(name, _make_attention(inner))
        if name not in ALL_MASK_ATTENTION_FUNCTIONS:
            AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[inner])


def supported_names() -> str:
    return ", ".join(sorted(SUPPORTED))


class HFFrontend:
    """Runs a transformers model over `Batch`es and returns the captured layers' q and k rows."""

    def __init__(self, model: Any, *, layers: Optional[Iterable[int]] = None, model_name: Optional[str] = None,
                 checkpoint: Optional[str] = None):
        try:
            import torch  # noqa: F401
            from transformers import PreTrainedModel
        except ImportError as error:  # pragma: no cover - the extra is missing
            raise ImportError("capture_hf needs torch and transformers: pip install 'qkcapture[hf]'") from error
        if not isinstance(model, PreTrainedModel):
            raise CaptureError("model", f"must be a transformers PreTrainedModel, got {type(model).__name__}")
        config = model.config
        model_type = getattr(config, "model_type", None)
        if model_type not in SUPPORTED:
            raise CaptureError("model", f"{type(model).__name__} (model_type {model_type!r}) is not supported by "
                               f"capture_hf; supported model types: {supported_names()}")
        attention_class, positional = SUPPORTED[model_type]
        if getattr(config, "add_cross_attention", False):
            raise CaptureError("model", f"{type(model).__name__} has cross-attention, which capture_hf does not "
                               "capture; load the model without it")
        self.model = model
        self.config = config
        self.modules = [m for m in model.modules() if type(m).__name__ == attention_class]
        n_layers = int(config.num_hidden_layers)
        if len(self.modules) != n_layers:
            raise CaptureError("model", f"{type(model).__name__}: found {len(self.modules)} {attention_class} modules "
                               f"for {n_layers} layers; this model is not laid out as capture_hf expects")
        for index, module in enumerate(self.modules):
            layer_idx = getattr(module, "layer_idx", None)
            if layer_idx is not None and int(layer_idx) != index:
                raise CaptureError("model", f"{type(model).__name__}: attention module {index} says it is layer "
                                   f"{layer_idx}; this model is not laid out as capture_hf expects")
        self.layers = self._check_layers(layers, n_layers)
        n_heads = int(config.num_attention_heads)
        n_kv_heads = int(getattr(config, "num_key_value_heads", None) or n_heads)
        first = self.modules[0]
        d_head = next(int(v) for v in (getattr(first, a, None) for a in ("head_dim", "head_size", "attention_head_size"))
                      if v is not None)
        scales = {float(getattr(self.modules[L], "scaling", d_head ** -0.5)) for L in self.layers}
        if model_name is None:
            model_name = getattr(config, "_name_or_path", None) or getattr(config, "name_or_path", None)
            if not model_name:
                raise CaptureError("model_name", "the model has no name (it was not loaded with from_pretrained); "
                                   "pass model_name='org/model'")
        if checkpoint is None:
            checkpoint = getattr(config, "_commit_hash", None) or "main"
        self.shape = ModelShape(name=str(model_name), checkpoint=str(checkpoint), n_layers=n_layers, n_heads=n_heads,
                                n_kv_heads=n_kv_heads, d_head=d_head, positional=positional,
                                attention_scale=scales.pop() if len(scales) == 1 else None)
        self._stop_after = max(self.layers)
        self._layer_of = {id(m): i for i, m in enumerate(self.modules)}
        self._wanted = set(self.layers)

    @staticmethod
    def _check_layers(layers: Optional[Iterable[int]], n_layers: int) -> List[int]:
        if layers is None:
            return list(range(n_layers))
        if isinstance(layers, str):
            raise CaptureError("layers", f"must be a list of layer numbers, got {layers!r}")
        chosen = []
        for value in layers:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise CaptureError("layers", f"layer numbers must be integers, got {value!r}")
            if not 0 <= int(value) < n_layers:
                raise CaptureError("layers", f"layer {value} is outside 0..{n_layers - 1} (the model has {n_layers} layers)")
            chosen.append(int(value))
        if not chosen:
            raise CaptureError("layers", "must name at least one layer")
        if len(set(chosen)) != len(chosen):
            raise CaptureError("layers", f"a layer is listed twice in {chosen}")
        return sorted(chosen)

    @contextmanager
    def _recording(self, batch: Batch, found: Dict[int, Tuple[Any, Any]]) -> Iterator[None]:
        """Route the attention through the recording wrappers while the block runs, then restore it."""
        _register()
        configs: Dict[int, Tuple[Any, Any]] = {}
        for module in self.model.modules():
            config = getattr(module, "config", None)
            if config is not None and hasattr(config, "_attn_implementation_internal"):
                configs.setdefault(id(config), (config, config._attn_implementation_internal))
        expected = (self.shape.n_heads, self.shape.n_kv_heads, self.shape.d_head)

        def record(module, query, key, scaling):
            layer = self._layer_of[id(module)]
            if layer in self._wanted:
                shape = (int(query.shape[1]), int(key.shape[1]), int(query.shape[-1]))
                if shape != expected or int(query.shape[2]) != batch.width:
                    raise RuntimeError(f"layer {layer}: the attention received q {list(query.shape)} and k "
                                       f"{list(key.shape)}, expected [B, {expected[0]}, T, {expected[2]}] and "
                                       f"[B, {expected[1]}, T, {expected[2]}]")
                found[layer] = (batch.select_queries(query).float().cpu(), batch.select_keys(key).float().cpu())
            if layer == self._stop_after:
                raise _StopForward

        try:
            for config, implementation in configs.values():
                inner = implementation if implementation in _IMPLEMENTATIONS else "sdpa"
                config._attn_implementation_internal = _registered_name(inner)
            for module in self.modules:
                setattr(module, _RECORDER, record)
            yield
        finally:
            for module in self.modules:
                if hasattr(module, _RECORDER):
                    delattr(module, _RECORDER)
            for config, implementation in configs.values():
                config._attn_implementation_internal = implementation

    def extract(self, batch: Batch) -> LayerVectors:
        import torch

        found: Dict[int, Tuple[Any, Any]] = {}
        device = next(self.model.parameters()).device
        inputs = {"input_ids": batch.input_ids.to(device), "attention_mask": batch.attention_mask.to(device)}
        base = self.model.base_model  # skips the LM head: only the attention is read
        with torch.inference_mode(), self._recording(batch, found):
            try:
                base(**inputs, use_cache=False) if _takes_use_cache(base) else base(**inputs)
            except _StopForward:
                pass
        missing = [L for L in self.layers if L not in found]
        if missing:
            raise RuntimeError(f"{type(self.model).__name__}: the attention of layer(s) {missing} did not go through "
                               "transformers' attention interface; capture_hf cannot capture this model")
        return {L: (found[L][0].numpy(), found[L][1].numpy()) for L in self.layers}


def _takes_use_cache(module: Any) -> bool:
    import inspect

    try:
        return "use_cache" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


def capture_hf(model: Any, tokenizer: Any, examples: ExamplesSource, path: "os.PathLike[str] | str", *,
               layers: Optional[Iterable[int]] = None, model_name: Optional[str] = None,
               checkpoint: Optional[str] = None, features: Optional[Mapping[str, Any]] = None,
               dtype: str = "bf16", batch_size: int = 8, overwrite: bool = False, token: str = "last",
               max_length: Optional[int] = None, dataset: Optional[Mapping[str, Any]] = None,
               progress: Optional[bool] = None) -> str:
    """Capture a transformers model's queries and keys for `examples` into a capture at `path`.

    `examples`: dicts or `qkcapture.Example`s (`{"id", "text", "query": {...}, "keys": [...]}`,
    see `qkcapture.examples`), or the path of a JSONL file of them. Records, for every layer in
    `layers` (default: all), the vectors whose dot product is the attention score: after q/k
    norms and the (partial) rotary embedding, keys per kv head, biases included, softmax scale
    excluded (noted as `model.attention_scale` in capture.json). `model_name` defaults to the
    name the model was loaded from, `checkpoint` to its commit hash, else "main"; `features`
    declares label names (`{"order": {"kind": "binding"}}`), any other label name used is
    `semantic`. Prompts run `batch_size` at a time, padded on the right; positions always index
    the unpadded prompt. Returns the capture's path; on any error nothing is left at `path`.
    """
    frontend = HFFrontend(model, layers=layers, model_name=model_name, checkpoint=checkpoint)
    if dataset is None:
        dataset = {"generator": "qkcapture.capture_hf", "transformers": _transformers_version()}
        if isinstance(examples, (str, os.PathLike)):
            dataset["examples"] = os.path.basename(os.fspath(examples))
    was_training = model.training
    model.eval()
    try:
        return write_capture(frontend, tokenizer, examples, path, features=features, dtype=dtype,
                             batch_size=batch_size, overwrite=overwrite, token=token, max_length=max_length,
                             dataset=dataset, progress=progress)
    finally:
        model.train(was_training)


def _transformers_version() -> str:
    import transformers

    return str(transformers.__version__)
