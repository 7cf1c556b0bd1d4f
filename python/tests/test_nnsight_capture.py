"""capture_nnsight: a tiny transformers Llama wrapped in an nnsight LanguageModel (0.8)."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("nnsight")

import qkcapture  # noqa: E402
from test_hf_capture import check_against_attention  # noqa: E402
from tiny_models import random_examples, tiny_model, word_tokenizer  # noqa: E402


def language_model(model):
    from nnsight import LanguageModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 0.8 calls LanguageModel a deprecated name of TransformersModel
        return LanguageModel(model, tokenizer=word_tokenizer())


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_nnsight_capture_matches_the_models_attention_and_equals_capture_hf(tmp_path, family):
    model = tiny_model(family)
    examples = random_examples(6, seed=1, min_items=1, max_items=10)
    path = qkcapture.capture_nnsight(language_model(model), examples, tmp_path / "nn", model_name=f"tiny/{family}",
                                     dtype="f32", batch_size=4)
    assert check_against_attention(model, word_tokenizer(), family, path, examples) > 0
    ours = qkcapture.read_capture(path)
    assert ours.header["dataset"]["generator"] == "qkcapture.capture_nnsight"
    hf = qkcapture.read_capture(qkcapture.capture_hf(model, word_tokenizer(), examples, tmp_path / "hf",
                                                     model_name=f"tiny/{family}", dtype="f32", batch_size=4))
    assert ours.prompts == hf.prompts
    assert ours.header["model"] == hf.header["model"] and ours.header["features"] == hf.header["features"]
    assert sorted(ours.tensors) == sorted(hf.tensors)
    for name in hf.tensors:
        np.testing.assert_array_equal(ours.tensors[name], hf.tensors[name])


def test_layers_and_shards(tmp_path):
    lm = language_model(tiny_model("llama"))
    examples = random_examples(5, seed=4)
    path = qkcapture.capture_nnsight(lm, examples, tmp_path / "cap", layers=[1], model_name="m", shard=(1, 2))
    cap = qkcapture.read_capture(path)
    assert cap.header["layers"] == [1] and sorted(cap.tensors) == ["layers.1.k", "layers.1.q"]
    assert [p["id"] for p in cap.prompts] == ["ex1", "ex3"]
    assert cap.header["dataset"]["shard"] == {"rank": 1, "world_size": 2}


def test_not_an_nnsight_model_is_refused(tmp_path):
    with pytest.raises(qkcapture.CaptureError, match="nnsight LanguageModel"):
        qkcapture.capture_nnsight(tiny_model("llama"), random_examples(1), tmp_path / "cap")
    assert not (tmp_path / "cap").exists()
