"""Tiny randomly initialised transformers models of every family capture_hf supports, a word-level
fast tokenizer with offsets, and random examples over it. No download: everything is built here.

Weights are re-drawn at a scale where attention scores are of order one (the default 0.02
initialisation makes every attention almost uniform, which would let a wrong capture pass).
"""
from __future__ import annotations

import math
import random
from typing import Dict, List

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (AutoModel, AutoModelForCausalLM, BertConfig, Gemma2Config, Gemma3TextConfig, GPT2Config,
                          GPTNeoXConfig, LlamaConfig, MistralConfig, Olmo2Config, Phi3Config, PreTrainedTokenizerFast,
                          Qwen2Config, Qwen3Config)

WORDS = ("apple pear plum grape dog cat cow horse red blue green gray car bus boat train "
         "which are the is in box list here a of , . ? :").split()
CATEGORIES = {"fruit": "apple pear plum grape".split(), "animal": "dog cat cow horse".split(),
              "color": "red blue green gray".split(), "vehicle": "car bus boat train".split()}
SOFTCAP = 2.0  # Gemma 2's attention logit soft-cap, low enough to bend the scores here

COMMON = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=128, bos_token_id=4, eos_token_id=3, pad_token_id=1)

FAMILIES = {
    "llama": lambda v: LlamaConfig(vocab_size=v, num_key_value_heads=2, **COMMON),
    "mistral": lambda v: MistralConfig(vocab_size=v, num_key_value_heads=2, sliding_window=None, **COMMON),
    "qwen2": lambda v: Qwen2Config(vocab_size=v, num_key_value_heads=2, **COMMON),  # q/k/v biases
    "qwen3": lambda v: Qwen3Config(vocab_size=v, num_key_value_heads=2, head_dim=8, **COMMON),  # q/k norms
    "gemma2": lambda v: Gemma2Config(vocab_size=v, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=12,
                                     attn_logit_softcapping=SOFTCAP, final_logit_softcapping=None,
                                     sliding_window=64, **COMMON),
    "gemma3_text": lambda v: Gemma3TextConfig(vocab_size=v, num_key_value_heads=2, head_dim=8,
                                              query_pre_attn_scalar=12, sliding_window=64,
                                              layer_types=["sliding_attention", "full_attention"], **COMMON),
    "olmo2": lambda v: Olmo2Config(vocab_size=v, num_key_value_heads=2, **COMMON),  # norm over the whole projection
    "phi3": lambda v: Phi3Config(vocab_size=v, num_key_value_heads=2, partial_rotary_factor=0.5,
                                 **COMMON),  # fused qkv, partial rotary
    "gpt_neox": lambda v: GPTNeoXConfig(vocab_size=v, rotary_pct=0.25, attention_bias=True, **COMMON),
    "gpt2": lambda v: GPT2Config(vocab_size=v, n_embd=32, n_head=4, n_layer=2, n_positions=128, bos_token_id=4,
                                 eos_token_id=3),
    "bert": lambda v: BertConfig(vocab_size=v, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                 num_attention_heads=4, max_position_embeddings=128, pad_token_id=1),
}
ENCODERS = {"bert"}


def word_tokenizer(encoder: bool = False) -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer (offsets included) over WORDS; BOS first, or [CLS] … [SEP]."""
    specials = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "<s>"]
    vocab = {token: i for i, token in enumerate(specials + list(WORDS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if encoder:
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                           special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                       cls_token="[CLS]", sep_token="[SEP]", model_max_length=128)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 4)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>",
                                   model_max_length=128)


def tiny_model(family: str, attn_implementation: str = "eager", seed: int = 0):
    """A 2-layer model of `family` with weights at a scale that makes attention far from uniform."""
    torch.manual_seed(seed)
    config = FAMILIES[family](len(WORDS) + 5)
    factory = AutoModel if family in ENCODERS else AutoModelForCausalLM
    model = factory.from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim >= 2:
                fan_in = param.shape[1] if param.shape[0] != config.vocab_size else param.shape[1]
                param.copy_(torch.randn(param.shape, generator=generator) * (1.5 / math.sqrt(fan_in)))
            elif name.endswith("bias"):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
            else:  # norm weights (Gemma's are offsets from 1)
                param.add_(torch.randn(param.shape, generator=generator) * 0.2)
    return model.eval()


def random_examples(count: int, seed: int = 0, encoder: bool = False, min_items: int = 3,
                    max_items: int = 9) -> List[Dict]:
    """Lists of items of several categories, then a question; keys at items (char spans) and one by position."""
    rng = random.Random(seed)
    examples = []
    names = sorted(CATEGORIES)
    for index in range(count):
        n_items = rng.randint(min_items, max_items)
        cats = [rng.choice(names) for _ in range(n_items)]
        items = [rng.choice(CATEGORIES[c]) for c in cats]
        asked = rng.choice(cats)
        text, keys = "here is a list :", []
        for order, (item, cat) in enumerate(zip(items, cats)):
            text += " "
            keys.append({"char_span": [len(text), len(text) + len(item)],
                         "labels": {"category": cat, "order": str(order)}})
            text += item + " ,"
        text += " which are the "
        start = len(text)
        text += asked + " ?"
        keys.append({"position": 0})  # BOS / [CLS], unlabelled
        query = {"char_span": [start, start + len(asked)], "labels": {"category": asked}}
        examples.append({"id": f"ex{index}", "text": text, "query": query, "keys": keys})
    return examples
