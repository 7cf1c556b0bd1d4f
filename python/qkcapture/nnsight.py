"""Capture an nnsight model in one call: `capture_nnsight`.

An nnsight `LanguageModel` (or `TransformersModel`) wraps a transformers model, whose attention
modules all hand their scores' vectors to one call, `attention_interface(self, query, key, value,
mask, scaling=...)`: queries `[B, n_heads, T, d_head]` and keys `[B, n_kv_heads, T, d_head]` after
the projections, q/k norms and rotary embedding (see `qkcapture.hf`). Inside an nnsight trace,
`module.source` exposes that call's inputs; the capture reads them there, at the rows it keeps,
so it records exactly what `capture_hf` records for the same model. Model checks, shapes, names
and checkpoints are `capture_hf`'s; examples, options, batching and writing are shared.
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .capture import Batch, ExamplesSource, LayerVectors, Shard, capture_model
from .errors import CaptureError
from .hf import HFFrontend

_CALL = re.compile(r"attention_interface_(\d+)$")


def _attention_call(source: Any, module_name: str) -> str:
    """The name nnsight gives the `attention_interface(...)` call in an attention module's forward."""
    calls = sorted((int(m.group(1)), name) for name in source.names if (m := _CALL.match(name)))
    if not calls:
        raise CaptureError("model", f"{module_name}: its forward calls no attention_interface; qkcapture reads the "
                           "vectors that transformers' attention interface receives")
    return calls[-1][1]  # attention_interface_0 binds the function, the last one calls it


class NNsightFrontend:
    """Runs an nnsight model over `Batch`es in traces and returns the captured layers' q and k rows."""

    def __init__(self, lm: Any, *, layers: Optional[Iterable[int]] = None, model_name: Optional[str] = None,
                 checkpoint: Optional[str] = None):
        try:
            from nnsight.intervention.envoy import Envoy
        except ImportError as error:  # pragma: no cover - the extra is missing
            raise ImportError("capture_nnsight needs nnsight: pip install 'qkcapture[nnsight]'") from error
        if not isinstance(lm, Envoy) or not hasattr(lm, "trace"):
            raise CaptureError("model", f"must be an nnsight LanguageModel (or TransformersModel), got {type(lm).__name__}")
        model = getattr(lm, "_module", None)  # the wrapped transformers model
        self.lm = lm
        self.hf = HFFrontend(model, layers=layers, model_name=model_name, checkpoint=checkpoint)
        self.shape, self.layers = self.hf.shape, self.hf.layers
        names = {id(module): name for name, module in model.named_modules()}
        self._paths = [names[id(self.hf.modules[L])] for L in self.layers]
        self._calls = [_attention_call(self._envoy(path).source, path) for path in self._paths]

    def _envoy(self, path: str) -> Any:
        envoy = self.lm
        for part in path.split("."):
            envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
        return envoy

    def extract(self, batch: Batch) -> LayerVectors:
        import torch

        device = next(self.hf.model.parameters()).device
        inputs = {"input_ids": batch.input_ids.to(device), "attention_mask": batch.attention_mask.to(device)}
        saved: Dict[int, Tuple[Any, Any]] = {}
        with torch.inference_mode(), self.lm.trace(inputs) as tracer:
            for layer, path, call in zip(self.layers, self._paths, self._calls):
                args, _ = getattr(self._envoy(path).source, call).inputs
                query, key = args[1], args[2]
                saved[layer] = (batch.select_queries(query).float().cpu().save(),
                                batch.select_keys(key).float().cpu().save())
            tracer.stop()  # nothing after the last captured layer is needed
        return {L: (q.numpy(), k.numpy()) for L, (q, k) in saved.items()}


def capture_nnsight(lm: Any, examples: ExamplesSource, path: "os.PathLike[str] | str", *,
                    layers: Optional[Iterable[int]] = None, model_name: Optional[str] = None,
                    checkpoint: Optional[str] = None, features: Optional[Mapping[str, Any]] = None,
                    dtype: str = "bf16", batch_size: int = 8, overwrite: bool = False, token: str = "last",
                    max_length: Optional[int] = None, dataset: Optional[Mapping[str, Any]] = None,
                    progress: Optional[bool] = None, shard: Optional[Shard] = None) -> str:
    """Capture an nnsight `LanguageModel`'s queries and keys for `examples` into a capture at `path`.

    Reads, inside one nnsight trace per batch, the query and key vectors each captured layer's
    attention hands to transformers' attention interface: the vectors `capture_hf` records for
    the wrapped model (post-RoPE, after q/k norms, keys per kv head). Prompts are tokenized with
    `lm.tokenizer`. Supported models, defaults and options are `capture_hf`'s.
    """
    frontend = NNsightFrontend(lm, layers=layers, model_name=model_name, checkpoint=checkpoint)
    tokenizer = getattr(lm, "tokenizer", None)
    if tokenizer is None:
        raise CaptureError("model", "has no tokenizer; create the LanguageModel with tokenizer=...")
    return capture_model(frontend, frontend.hf.model, tokenizer, examples, path,
                         provenance={"generator": "qkcapture.capture_nnsight", "nnsight": _version()}, dataset=dataset,
                         features=features, dtype=dtype, batch_size=batch_size, overwrite=overwrite, token=token,
                         max_length=max_length, progress=progress, shard=shard)


def _version() -> str:
    import nnsight

    return str(getattr(nnsight, "__version__", "unknown"))
