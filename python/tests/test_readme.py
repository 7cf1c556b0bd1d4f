"""The README's quick start runs as written and writes a capture that reads back."""
import re
from pathlib import Path

import qkcapture

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})
    assert capsys.readouterr().out.strip() == "my-org/tiny-llama 20 (60, 2, 16)"
    cap = qkcapture.read_capture(tmp_path / "demo-capture")
    assert cap.header["positional"] == "post-rope" and cap.tensors.dtype("layers.0.q") == "BF16"


def test_capture_hf_example_runs_on_a_stand_in_model(tmp_path, monkeypatch):
    """The capture_hf example as written, with from_pretrained handing out a 16-layer random Llama
    and a word-level tokenizer instead of downloading meta-llama/Llama-3.2-1B."""
    import pytest

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tiny_models import word_tokenizer

    def fake_model(name, **kwargs):
        torch.manual_seed(0)
        config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=16,
                                          num_attention_heads=4, num_key_value_heads=2, bos_token_id=4,
                                          eos_token_id=3, pad_token_id=1)
        model = transformers.LlamaForCausalLM(config)
        model.config._name_or_path = name
        return model

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_model)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda name, **kwargs: word_tokenizer())
    text = README.read_text(encoding="utf-8")
    section = text.split("## From a transformers model, in one call", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})
    cap = qkcapture.read_capture(tmp_path / "capture-llama")
    assert cap.header["model"]["name"] == "meta-llama/Llama-3.2-1B" and cap.header["layers"] == [4, 8, 12]
    assert cap.header["features"] == {"order": {"kind": "binding"}, "category": {"kind": "semantic"}}
    prompt = cap.prompts[0]
    # <s> apple , dog , pear . Which are fruits ? ("Which" and "fruits" are [UNK] to the stand-in's vocabulary)
    assert prompt["query"] == {"position": 9, "labels": {"category": "fruit"}}
    assert [prompt["tokens"][k["position"]] for k in prompt["keys"]] == ["apple", "dog", "pear"]
