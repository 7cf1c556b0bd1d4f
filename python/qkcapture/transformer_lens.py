"""Capture a TransformerLens model in one call: `capture_transformer_lens`.

TransformerLens 4 runs Hugging Face models through its `TransformerBridge`
(`TransformerBridge.boot_transformers(name)`); TransformerLens 2 and 3 have their own
`HookedTransformer`. Both name the vectors whose dot product is the attention score with hook
points: `blocks.{L}.attn.hook_rot_q` / `hook_rot_k` after the rotary embedding in rotary models,
`hook_q` / `hook_k` in the others, shaped `[batch, pos, heads, d_head]` with the keys per kv head
in grouped-query models. The capture reads those hooks at the rows it keeps, and checks them on
the first batch against the model's own `hook_attn_scores` (the scaled scores before the
softmax): an architecture whose scores are not `scale·q·k` of those hooks is refused rather than
captured wrongly. Examples, options, batching and writing are `capture_hf`'s (`qkcapture.capture`).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from .capture import Batch, ExamplesSource, LayerVectors, ModelShape, Shard, capture_model
from .errors import CaptureError
from .hf import HFFrontend

# The revision names of training checkpoints, as the Hub and capture_hf's `--revision` spell them.
_CHECKPOINT_REVISIONS = {"EleutherAI/pythia": "step{value}", "stanford-crfm": "checkpoint-{value}"}
# Relative tolerance of the first-batch check of scale·q·k against hook_attn_scores.
_SCORE_TOLERANCE = 1e-3


def _is_bridge(model: Any) -> bool:
    return any(cls.__name__ == "TransformerBridge" and cls.__module__.startswith("transformer_lens")
               for cls in type(model).__mro__)


def _checkpoint_of(cfg: Any, name: str) -> Optional[str]:
    """The training checkpoint a model was loaded at (`checkpoint_value`), named as its Hub revision."""
    value = getattr(cfg, "checkpoint_value", None)
    if value is None:
        return None
    for prefix, pattern in _CHECKPOINT_REVISIONS.items():
        if name.startswith(prefix):
            return pattern.format(value=value)
    label = getattr(cfg, "checkpoint_label_type", None) or "step"
    return f"{label}{value}"


class TransformerLensFrontend:
    """Runs a `TransformerBridge` (TransformerLens 4) or a `HookedTransformer` (2.x, 3.x) over `Batch`es."""

    def __init__(self, model: Any, *, layers: Optional[Iterable[int]] = None, model_name: Optional[str] = None,
                 checkpoint: Optional[str] = None):
        cfg = getattr(model, "cfg", None)
        if cfg is None or not hasattr(model, "run_with_hooks") or not hasattr(model, "hook_dict"):
            raise CaptureError("model", f"must be a TransformerLens TransformerBridge or HookedTransformer, got "
                               f"{type(model).__name__}")
        self.model = model
        self.bridge = _is_bridge(model)
        n_layers, n_heads, d_head = int(cfg.n_layers), int(cfg.n_heads), int(cfg.d_head)
        n_kv_heads = int(getattr(cfg, "n_key_value_heads", None) or n_heads)
        kind = getattr(cfg, "positional_embedding_type", "standard")
        if kind == "alibi":
            raise CaptureError("model", "ALiBi models add a position bias to q·k, which a capture cannot hold; "
                               "qkcapture captures rotary and absolute-position models")
        rotary = kind == "rotary"
        self.hooks = ("hook_rot_q", "hook_rot_k") if rotary else ("hook_q", "hook_k")
        self.layers = HFFrontend._check_layers(layers, n_layers)
        missing = [f"blocks.{L}.attn.{h}" for L in self.layers for h in self.hooks
                   if f"blocks.{L}.attn.{h}" not in model.hook_dict]
        if missing:
            raise CaptureError("model", f"{type(model).__name__} has no hook point {missing[0]}; this architecture "
                               "does not expose the query and key vectors qkcapture reads")
        if model_name is None:
            model_name = getattr(cfg, "model_name", None)
            if not model_name or model_name == "custom":
                raise CaptureError("model_name", "the model's config names no model; pass model_name='org/model'")
        if checkpoint is None:
            checkpoint = _checkpoint_of(cfg, str(model_name))
        if checkpoint is None:  # as capture_hf: the Hub commit the wrapped model was loaded from
            checkpoint = getattr(getattr(getattr(model, "original_model", None), "config", None), "_commit_hash", None)
        self.shape = ModelShape(name=str(model_name), checkpoint=str(checkpoint or "main"), n_layers=n_layers,
                                n_heads=n_heads, n_kv_heads=n_kv_heads, d_head=d_head,
                                positional="post-rope" if rotary else "none", attention_scale=self._scale(cfg, d_head))
        self._checked = False

    def _scale(self, cfg: Any, d_head: int) -> Optional[float]:
        """The factor on q·k before the softmax: the wrapped HF module's `scaling`, or the legacy config's."""
        if self.bridge:
            wrapped = [getattr(self.model.blocks[L].attn, "original_component", None) for L in self.layers]
            scales = {float(m.scaling) for m in wrapped if getattr(m, "scaling", None) is not None}
            return scales.pop() if len(scales) == 1 else None
        if not getattr(cfg, "use_attn_scale", True):
            return 1.0
        divisor = float(getattr(cfg, "attn_scale", -1.0))
        return 1.0 / divisor if divisor > 0 else d_head ** -0.5

    def extract(self, batch: Batch) -> LayerVectors:
        import torch

        q_hook, k_hook = self.hooks
        found: Dict[Tuple[int, str], Any] = {}
        check = not self._checked and self.shape.attention_scale is not None and all(
            f"blocks.{L}.attn.hook_attn_scores" in self.model.hook_dict for L in self.layers)

        def keep(layer: int, side: str):
            def hook(tensor, hook=None):
                if side == "q":
                    found[(layer, side)] = batch.select_queries(tensor, layout="bthd").float().cpu()
                elif side == "k":
                    found[(layer, side)] = batch.select_keys(tensor, layout="bthd").float().cpu()
                else:
                    found[(layer, side)] = batch.select_scores(tensor).double().cpu()
                return tensor
            return hook

        hooks = []
        for L in self.layers:
            hooks.append((f"blocks.{L}.attn.{q_hook}", keep(L, "q")))
            hooks.append((f"blocks.{L}.attn.{k_hook}", keep(L, "k")))
            if check:
                hooks.append((f"blocks.{L}.attn.hook_attn_scores", keep(L, "scores")))
        device = getattr(self.model.cfg, "device", None) or "cpu"
        with torch.inference_mode():
            self.model.run_with_hooks(batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device),
                                      fwd_hooks=hooks, stop_at_layer=max(self.layers) + 1, return_type=None)
        missing = [L for L in self.layers if (L, "q") not in found or (L, "k") not in found]
        if missing:
            raise RuntimeError(f"{type(self.model).__name__}: the hooks {q_hook}/{k_hook} of layer(s) {missing} did "
                               "not run; qkcapture cannot capture this model")
        vectors = {L: (found[(L, "q")].numpy(), found[(L, "k")].numpy()) for L in self.layers}
        if check:
            self._check_scores(batch, vectors, {L: found[(L, "scores")].numpy() for L in self.layers if (L, "scores") in found})
            self._checked = True
        return vectors

    def _check_scores(self, batch: Batch, vectors: LayerVectors, scores: Mapping[int, np.ndarray]) -> None:
        group = self.shape.n_heads // self.shape.n_kv_heads
        prompt_of_key = np.repeat(np.arange(len(batch)), batch.key_counts)
        for layer, model_scores in scores.items():
            q, k = vectors[layer]
            ours = self.shape.attention_scale * np.einsum(
                "khd,khd->kh", q[prompt_of_key].astype(np.float64), np.repeat(k, group, axis=1).astype(np.float64))
            usable = np.abs(model_scores) < 1e30  # masked pairs (a key after a causal query) hold the dtype's minimum
            if not usable.any():
                continue
            error = float(np.max(np.abs(ours - model_scores)[usable]))
            size = float(np.max(np.abs(model_scores[usable])))
            if error > _SCORE_TOLERANCE * max(size, 1.0):
                raise CaptureError("model", f"{type(self.model).__name__}: at layer {layer}, scale·{self.hooks[0]}·"
                                   f"{self.hooks[1]} differs from the model's hook_attn_scores by {error:.3g} "
                                   f"(scores up to {size:.3g}); this architecture's attention scores are not the dot "
                                   "product of those hooks, so qkcapture cannot capture it through TransformerLens")


def capture_transformer_lens(model: Any, examples: ExamplesSource, path: "os.PathLike[str] | str", *,
                             layers: Optional[Iterable[int]] = None, model_name: Optional[str] = None,
                             checkpoint: Optional[str] = None, features: Optional[Mapping[str, Any]] = None,
                             dtype: str = "bf16", batch_size: int = 8, overwrite: bool = False, token: str = "last",
                             max_length: Optional[int] = None, dataset: Optional[Mapping[str, Any]] = None,
                             progress: Optional[bool] = None, shard: Optional[Shard] = None) -> str:
    """Capture a TransformerLens model's queries and keys for `examples` into a capture at `path`.

    `model`: a `TransformerBridge` (TransformerLens 4: `TransformerBridge.boot_transformers(name)`)
    or a `HookedTransformer` (TransformerLens 2.x / 3.x). Prompts are tokenized with
    `model.tokenizer` (positions index its tokens, BOS included). Records `hook_rot_q`/`hook_rot_k`
    (rotary models, `positional` "post-rope") or `hook_q`/`hook_k` (others, "none") at the
    examples' query and key positions; keys per kv head. `model_name` defaults to `cfg.model_name`,
    `checkpoint` to the training checkpoint the model was loaded at (`step143000` for Pythia's
    `checkpoint_value=143000`), else "main". Everything else is as in `capture_hf`.
    """
    frontend = TransformerLensFrontend(model, layers=layers, model_name=model_name, checkpoint=checkpoint)
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise CaptureError("model", "has no tokenizer; boot it with one (tokenizer=...)")
    return capture_model(frontend, model, tokenizer, examples, path,
                         provenance={"generator": "qkcapture.capture_transformer_lens", "transformer_lens": _version()}, dataset=dataset,
                         features=features, dtype=dtype, batch_size=batch_size, overwrite=overwrite, token=token,
                         max_length=max_length, progress=progress, shard=shard)


def _version() -> str:
    try:
        from importlib.metadata import version

        return str(version("transformer-lens"))
    except Exception:  # pragma: no cover - installed without metadata
        return "unknown"
