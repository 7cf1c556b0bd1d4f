"""capture_transformer_lens on TransformerLens 3's HookedTransformer, run in a process whose path
puts TransformerLens 3 first (TransformerLens 4, installed beside it, removed HookedTransformer):

    PYTHONPATH=<transformer-lens 3 site> python legacy_lens.py OUT_DIR

Builds a tiny rotary grouped-query model and a tiny absolute-position one from configs, captures
them, and checks every captured log-ratio against the model's own hook_pattern (as capture_hf's
test does). Prints one line per model; exits non-zero on any failure.
"""
import math
import sys
from types import SimpleNamespace

import torch

import qkcapture
from test_hf_capture import check_against_attention
from tiny_models import random_examples, word_tokenizer


def tiny_hooked_transformer(rotary: bool, folder: str):
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import AutoTokenizer

    word_tokenizer().save_pretrained(folder)  # HookedTransformer re-loads its tokenizer by name
    tokenizer = AutoTokenizer.from_pretrained(folder)
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=32, n_ctx=128, d_head=8, n_heads=4, d_mlp=48, d_vocab=len(tokenizer), act_fn="silu",
        normalization_type="RMS", positional_embedding_type="rotary" if rotary else "standard",
        n_key_value_heads=2 if rotary else None, model_name="tiny-legacy", default_prepend_bos=False)
    torch.manual_seed(0)
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # weights large enough that attention is far from uniform
        for param in model.parameters():
            if param.ndim >= 2:
                fan_in = param.shape[-2] if param.ndim == 3 else param.shape[0]
                param.copy_(torch.randn(param.shape, generator=generator) * 1.5 / math.sqrt(fan_in))
    return model.eval()


def main(out: str) -> None:
    import transformer_lens

    assert hasattr(transformer_lens, "HookedTransformer"), transformer_lens.__file__
    for rotary in (True, False):
        model = tiny_hooked_transformer(rotary, f"{out}/tokenizer-{rotary}")
        examples = random_examples(6, seed=1)
        path = qkcapture.capture_transformer_lens(model, examples, f"{out}/capture-{rotary}", dtype="f32",
                                                  batch_size=4)
        header = qkcapture.read_capture(path).header
        assert header["positional"] == ("post-rope" if rotary else "none")
        assert header["model"]["n_kv_heads"] == (2 if rotary else 4) and header["model"]["name"] == "tiny-legacy"

        def attentions_of(text):
            ids = model.tokenizer(text, return_tensors="pt").input_ids
            with torch.no_grad():
                _, cache = model.run_with_cache(ids, names_filter=lambda n: n.endswith("hook_pattern"))
            return [cache[f"blocks.{L}.attn.hook_pattern"][0].double().numpy() for L in range(2)]

        checked = check_against_attention(SimpleNamespace(config=SimpleNamespace(head_dim=8)), model.tokenizer,
                                          "legacy", path, examples, attentions_of=attentions_of)
        print(f"HookedTransformer {'rotary' if rotary else 'standard'}: {int(checked)} log-ratios match")


if __name__ == "__main__":
    main(sys.argv[1])
