"""python/README.md's TransformerLens and nnsight recipes run as written, on a tiny Llama saved
from a config in place of the hub name, and capture what capture_hf captures."""
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import qkcapture  # noqa: E402
from tiny_models import random_examples, tiny_model, word_tokenizer  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
HUB_NAME = "meta-llama/Llama-3.2-1B"


def recipe(title):
    section = README.read_text(encoding="utf-8").split(f"\n### {title}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_model("llama").save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    examples = random_examples(5, seed=8)
    with open(folder / "examples.jsonl", "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in examples)
    reference = qkcapture.capture_hf(tiny_model("llama"), word_tokenizer(), examples, folder / "reference",
                                     model_name=str(folder), features={"order": {"kind": "binding"}})
    return folder, qkcapture.read_capture(reference)


@pytest.mark.parametrize("title, library, out", [("TransformerLens", "transformer_lens", "capture-tl"),
                                                 ("nnsight", "nnsight", "capture-nnsight")])
def test_recipe_runs_and_captures_what_capture_hf_does(tmp_path, monkeypatch, saved_model, title, library, out):
    pytest.importorskip(library)
    folder, reference = saved_model
    code = recipe(title)
    assert HUB_NAME in code
    monkeypatch.chdir(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code.replace(HUB_NAME, str(folder)).replace(f'"{out}"', repr(str(tmp_path / out))),
                     str(README), "exec"), {})
    cap = qkcapture.read_capture(tmp_path / out)
    assert cap.prompts == reference.prompts and cap.header["features"] == reference.header["features"]
    assert cap.header["model"] == reference.header["model"]
    for name in reference.tensors:  # bf16 both: the same vectors, up to rounding across batch shapes
        np.testing.assert_allclose(cap.tensors[name], reference.tensors[name], rtol=1e-2, atol=1e-5)


def test_top_level_readme_recipe_gives_three_equal_captures(tmp_path, monkeypatch, saved_model):
    pytest.importorskip("transformer_lens")
    pytest.importorskip("nnsight")
    folder, reference = saved_model
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text.split("The same examples go through TransformerLens and nnsight", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "examples.jsonl").write_bytes((folder / "examples.jsonl").read_bytes())
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code.replace(HUB_NAME, str(folder)), "README.md", "exec"), {})
    captures = [qkcapture.read_capture(tmp_path / name) for name in ("capture-hf", "capture-tl", "capture-nnsight")]
    for cap in captures:
        assert cap.prompts == reference.prompts and cap.header["model"] == reference.header["model"]
        for name in reference.tensors:
            np.testing.assert_allclose(cap.tensors[name], reference.tensors[name], rtol=1e-2, atol=1e-5)
