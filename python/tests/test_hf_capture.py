"""capture_hf against each supported family's own attention.

For every prompt, captured layer, head and pair of captured keys (a, b) of the query's row:
scale·(q·k_a − q·k_b) = log(attn[a] / attn[b]), with attn the model's own eager attention
probabilities (output_attentions=True). Gemma 2 soft-caps its scores: the comparison applies the
cap. BERT attends both ways (no causal mask), so its keys may follow the query.
"""
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import qkcapture  # noqa: E402
from tiny_models import ENCODERS, FAMILIES, SOFTCAP, random_examples, tiny_model, word_tokenizer  # noqa: E402

TOLERANCE = 1e-4


def head_dim(config):
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def expected_scale(model, family):
    if family.startswith("gemma"):
        return model.config.query_pre_attn_scalar ** -0.5
    return head_dim(model.config) ** -0.5


def attention_probabilities(model, tokenizer, text):
    """The model's own eager attention for one unpadded prompt: per layer [heads, T, T]."""
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        out = model(**ids, output_attentions=True)
    return [a[0].double().numpy() for a in out.attentions]


def score_function(family):
    if family == "gemma2":
        return lambda x: SOFTCAP * np.tanh(x / SOFTCAP)
    return lambda x: x


def check_against_attention(model, tokenizer, family, path, examples):
    cap = qkcapture.read_capture(path)
    header = cap.header["model"]
    scale = header["attention_scale"]
    assert scale == pytest.approx(expected_scale(model, family), rel=1e-12)
    group = header["n_heads"] // header["n_kv_heads"]
    bend = score_function(family)
    key_offset = 0
    checked = spread = 0.0
    qs = {layer: cap.tensors.q(layer).astype(np.float64) for layer in cap.header["layers"]}
    ks = {layer: cap.tensors.k(layer).astype(np.float64) for layer in cap.header["layers"]}
    for row, (prompt, example) in enumerate(zip(cap.prompts, examples)):
        assert prompt["id"] == example["id"]
        attentions = attention_probabilities(model, tokenizer, example["text"])
        positions = [key["position"] for key in prompt["keys"]]
        qpos = prompt["query"]["position"]
        for layer in cap.header["layers"]:
            q = qs[layer][row]
            k = ks[layer][key_offset:key_offset + len(positions)]
            for head in range(header["n_heads"]):
                scores = bend(scale * (k[:, head // group] @ q[head]))
                logs = np.log(attentions[layer][head, qpos, positions])
                got = scores[:, None] - scores[None, :]
                want = logs[:, None] - logs[None, :]
                assert np.max(np.abs(got - want)) < TOLERANCE, (family, prompt["id"], layer, head)
                checked += got.size
                spread = max(spread, float(np.max(np.abs(want))))
        key_offset += len(positions)
    # The check has teeth: the attention is far from uniform over the keys.
    assert spread > 1.0, spread
    return checked


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_capture_matches_the_models_own_attention(tmp_path, family):
    encoder = family in ENCODERS
    model, tokenizer = tiny_model(family), word_tokenizer(encoder)
    examples = random_examples(6, seed=1, encoder=encoder)
    path = qkcapture.capture_hf(model, tokenizer, examples, tmp_path / "cap", model_name=f"tiny/{family}",
                                dtype="f32", batch_size=4)
    cap = qkcapture.read_capture(path)
    config = model.config
    assert cap.header["layers"] == [0, 1]
    assert cap.header["model"]["n_heads"] == config.num_attention_heads
    assert cap.header["model"]["d_head"] == head_dim(config)
    assert cap.header["model"]["n_kv_heads"] == (getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    assert cap.header["positional"] == ("none" if family in ("gpt2", "bert") else "post-rope")
    assert set(cap.header["features"]) == {"category", "order"}
    assert check_against_attention(model, tokenizer, family, path, examples) > 0


def test_keys_may_follow_the_query_in_an_encoder(tmp_path):
    model, tokenizer = tiny_model("bert"), word_tokenizer(encoder=True)
    examples = random_examples(3, seed=2, encoder=True)
    for example in examples:  # query at the first item, keys at the others and at the question
        example["query"], example["keys"] = example["keys"][0], example["keys"][1:] + [example["query"]]
    path = qkcapture.capture_hf(model, tokenizer, examples, tmp_path / "cap", model_name="tiny/bert", dtype="f32")
    cap = qkcapture.read_capture(path)
    assert any(k["position"] > p["query"]["position"] for p in cap.prompts for k in p["keys"])
    check_against_attention(model, tokenizer, "bert", path, examples)


@pytest.mark.parametrize("family", ["llama", "bert"])
def test_sdpa_models_are_captured_through_sdpa_and_match_eager(tmp_path, family):
    encoder = family in ENCODERS
    eager = tiny_model(family)
    sdpa = tiny_model(family, attn_implementation="sdpa")
    assert sdpa.config._attn_implementation == "sdpa"
    tokenizer = word_tokenizer(encoder)
    examples = random_examples(5, seed=3, encoder=encoder)
    path = qkcapture.capture_hf(sdpa, tokenizer, examples, tmp_path / "cap", model_name=f"tiny/{family}", dtype="f32")
    assert sdpa.config._attn_implementation == "sdpa"  # restored
    check_against_attention(eager, tokenizer, family, path, examples)


def test_a_wrong_capture_fails_the_check(tmp_path):
    """The comparison has teeth: the same capture with each prompt's key vectors in reverse order fails it."""
    model, tokenizer = tiny_model("llama"), word_tokenizer()
    examples = random_examples(3, seed=4)
    path = qkcapture.capture_hf(model, tokenizer, examples, tmp_path / "cap", model_name="tiny/llama", dtype="f32")
    check_against_attention(model, tokenizer, "llama", path, examples)
    cap = qkcapture.read_capture(path)
    h = cap.header
    with qkcapture.CaptureWriter(tmp_path / "wrong", model=h["model"]["name"], checkpoint="main",
                                 n_layers=2, n_heads=4, n_kv_heads=2, d_head=8, layers=h["layers"],
                                 features=h["features"], dtype="f32",
                                 attention_scale=h["model"]["attention_scale"]) as w:
        offset = 0
        for row, p in enumerate(cap.prompts):
            n = len(p["keys"])
            w.add_prompt(p["id"], tokens=p["tokens"], query_position=p["query"]["position"],
                         query_labels=p["query"].get("labels"), keys=p["keys"],
                         q={L: cap.tensors.q(L)[row] for L in h["layers"]},
                         k={L: cap.tensors.k(L)[offset:offset + n][::-1] for L in h["layers"]})
            offset += n
    with pytest.raises(AssertionError):
        check_against_attention(model, tokenizer, "llama", tmp_path / "wrong", examples)


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_batch_size_does_not_change_the_vectors(tmp_path, family):
    encoder = family in ENCODERS
    model, tokenizer = tiny_model(family), word_tokenizer(encoder)
    examples = random_examples(12, seed=5, encoder=encoder, min_items=1, max_items=12)  # lengths differ: padding
    one = qkcapture.read_capture(qkcapture.capture_hf(model, tokenizer, examples, tmp_path / "b1",
                                                      model_name="m", dtype="f32", batch_size=1))
    eight = qkcapture.read_capture(qkcapture.capture_hf(model, tokenizer, examples, tmp_path / "b8",
                                                        model_name="m", dtype="f32", batch_size=8))
    assert one.prompts == eight.prompts
    for name in one.tensors:
        # Equal up to float32 rounding: CPU matrix kernels block differently for other batch shapes.
        np.testing.assert_allclose(one.tensors[name], eight.tensors[name], rtol=0, atol=4e-6)
