"""capture_transformer_lens against the model's own attention pattern, through a TransformerLens 4
`TransformerBridge` around tiny models built from configs and saved locally (no download).

The legacy `HookedTransformer` (TransformerLens 2.x / 3.x) is not installed here: TransformerLens 4
removed it, and its path is not tested.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("transformer_lens")

import qkcapture  # noqa: E402
from qkcapture.transformer_lens import TransformerLensFrontend  # noqa: E402
from test_hf_capture import check_against_attention  # noqa: E402
from tiny_models import random_examples, tiny_model, word_tokenizer  # noqa: E402


def boot_bridge(family, folder):
    """A TransformerBridge around a tiny `family` model saved in `folder`, as a user boots a local model."""
    from transformers import AutoTokenizer
    from transformer_lens.model_bridge import TransformerBridge

    model = tiny_model(family)
    model.save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    bridge = TransformerBridge.boot_transformers(str(folder), hf_model=model,
                                                 tokenizer=AutoTokenizer.from_pretrained(folder), device="cpu")
    return model, bridge


def bridge_pattern(bridge):
    """The bridge's own attention probabilities (`hook_pattern`) for one text: per layer [heads, T, T]."""
    names = {f"blocks.{L}.attn.hook_pattern" for L in range(bridge.cfg.n_layers)}

    def attentions_of(text):
        ids = bridge.tokenizer(text, return_tensors="pt").input_ids
        with torch.no_grad():
            _, cache = bridge.run_with_cache(ids, names_filter=lambda n: n in names)
        return [cache[f"blocks.{L}.attn.hook_pattern"][0].double().numpy() for L in range(bridge.cfg.n_layers)]

    return attentions_of


@pytest.fixture(scope="module")
def bridges(tmp_path_factory):
    return {family: boot_bridge(family, tmp_path_factory.mktemp(family)) for family in ("llama", "gpt2")}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_bridge_capture_matches_its_attention_pattern(tmp_path, bridges, family):
    model, bridge = bridges[family]
    examples = random_examples(6, seed=1)
    path = qkcapture.capture_transformer_lens(bridge, examples, tmp_path / "cap", dtype="f32", batch_size=4,
                                              features={"order": {"kind": "binding"}})
    cap = qkcapture.read_capture(path)
    shape = cap.header["model"]
    assert shape["name"] == bridge.cfg.model_name  # the model's own name: the folder it was booted from
    assert shape["checkpoint"] == "main"
    assert (shape["n_heads"], shape["n_kv_heads"], shape["d_head"]) == \
        ((4, 2, 8) if family == "llama" else (4, 4, 8))  # grouped-query keys stay one per kv head
    assert cap.header["positional"] == ("post-rope" if family == "llama" else "none")
    assert cap.header["features"] == {"order": {"kind": "binding"}, "category": {"kind": "semantic"}}
    assert cap.header["dataset"]["generator"] == "qkcapture.capture_transformer_lens"
    assert check_against_attention(model, bridge.tokenizer, family, path, examples,
                                   attentions_of=bridge_pattern(bridge)) > 0


def test_bridge_capture_equals_capture_hf(tmp_path, bridges):
    _, bridge = bridges["llama"]
    examples = random_examples(5, seed=2, min_items=1, max_items=10)
    lens = qkcapture.read_capture(qkcapture.capture_transformer_lens(
        bridge, examples, tmp_path / "tl", layers=[1], model_name="tiny/llama", dtype="f32", batch_size=3))
    # A model of the same weights: booting a bridge re-routes its model's attention around transformers' interface.
    hf = qkcapture.read_capture(qkcapture.capture_hf(tiny_model("llama"), word_tokenizer(), examples, tmp_path / "hf", layers=[1],
                                                     model_name="tiny/llama", dtype="f32", batch_size=3))
    assert lens.prompts == hf.prompts and lens.header["model"] == hf.header["model"]
    for name in hf.tensors:
        np.testing.assert_allclose(lens.tensors[name], hf.tensors[name], rtol=0, atol=1e-6)


def test_the_checkpoint_comes_from_the_config(bridges):
    _, bridge = bridges["llama"]
    bridge.cfg.checkpoint_value = 143000
    try:
        assert TransformerLensFrontend(bridge).shape.checkpoint == "step143000"
        assert TransformerLensFrontend(bridge, model_name="EleutherAI/pythia-70m").shape.checkpoint == "step143000"
        assert TransformerLensFrontend(bridge, model_name="stanford-crfm/alias-gpt2-small-x21").shape.checkpoint \
            == "checkpoint-143000"
        assert TransformerLensFrontend(bridge, checkpoint="mine").shape.checkpoint == "mine"
    finally:
        bridge.cfg.checkpoint_value = None


def test_scores_that_are_not_the_hooks_dot_product_are_refused(tmp_path, bridges, monkeypatch):
    """The first-batch check has teeth: with a wrong scale the hooks no longer give hook_attn_scores."""
    _, bridge = bridges["llama"]
    monkeypatch.setattr(TransformerLensFrontend, "_scale", lambda self, cfg, d_head: 0.5)
    with pytest.raises(qkcapture.CaptureError, match="differs from the model's hook_attn_scores"):
        qkcapture.capture_transformer_lens(bridge, random_examples(2, seed=3), tmp_path / "cap")
    assert not (tmp_path / "cap").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_bad_arguments_are_refused(tmp_path, bridges):
    _, bridge = bridges["gpt2"]
    with pytest.raises(qkcapture.CaptureError, match="layer 5 is outside 0..1"):
        qkcapture.capture_transformer_lens(bridge, random_examples(1), tmp_path / "cap", layers=[5])
    with pytest.raises(qkcapture.CaptureError, match="TransformerBridge or HookedTransformer"):
        qkcapture.capture_transformer_lens(object(), random_examples(1), tmp_path / "cap")
    with pytest.raises(qkcapture.CaptureError, match="shard"):
        qkcapture.capture_transformer_lens(bridge, random_examples(1), tmp_path / "cap", shard=(2, 2))
    assert not (tmp_path / "cap").exists()


def transformer_lens_3():
    """Where TransformerLens 3 is installed beside TransformerLens 4 (`make test` puts it in .venv)."""
    import os
    import pathlib

    configured = os.environ.get("QKCAPTURE_TRANSFORMER_LENS_3")
    path = pathlib.Path(configured) if configured else pathlib.Path(__file__).resolve().parents[2] / ".venv" / "transformer-lens-3"
    return path if (path / "transformer_lens" / "HookedTransformer.py").exists() else None


def test_legacy_hooked_transformer_matches_its_attention_pattern(tmp_path):
    """TransformerLens 3's HookedTransformer, in a process that imports it instead of TransformerLens 4."""
    import os
    import pathlib
    import subprocess
    import sys

    site = transformer_lens_3()
    if site is None:
        pytest.skip("TransformerLens 3 is not installed beside TransformerLens 4 (make test installs it)")
    tests = pathlib.Path(__file__).resolve().parent
    package_root = pathlib.Path(qkcapture.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, [site, package_root, tests])))
    run = subprocess.run([sys.executable, str(tests / "legacy_lens.py"), str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and "rotary" in lines[0] and "standard" in lines[1], run.stdout
    assert all(int(line.split(": ")[1].split()[0]) > 0 for line in lines)
