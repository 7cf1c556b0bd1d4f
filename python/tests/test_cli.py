"""`qkcapture hf` (python -m qkcapture): a saved tiny model captured from the shell, help, errors and exit codes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qkcapture
from qkcapture.cli import main, parse_layers, UsageError

PYTHON_DIR = Path(__file__).resolve().parents[1]


def run(args):
    from io import StringIO

    out, err = StringIO(), StringIO()
    code = main(args, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_help_and_usage_errors():
    code, out, _ = run(["--help"])
    assert code == 0 and out.startswith("OVERVIEW: ") and "SUBCOMMANDS:\n  hf " in out
    code, out, _ = run(["help", "hf"])
    assert code == 0 and "USAGE: qkcapture hf <model> --examples <file> --out <dir>" in out
    assert "  --layers <list>         Layers to capture, such as 0,4-7. (default: all)" in out
    assert run(["hf", "--help"])[1] == out
    code, _, err = run(["hf", "model-dir", "--out", "x"])
    assert code == 64 and err.startswith("Error: missing --examples\nUsage: qkcapture hf <model>")
    assert err.endswith("See 'qkcapture hf --help'.\n")
    code, _, err = run(["frobnicate"])
    assert code == 64 and err.startswith("Error: unknown subcommand 'frobnicate'")
    code, _, err = run(["hf", "m", "--examples", "e", "--out", "o", "--batch-size", "0"])
    assert code == 64 and "--batch-size: expected a positive integer, got '0'" in err
    code, _, err = run(["hf", "m", "--examples", "e", "--out", "o", "--dtype", "int8"])
    assert code == 64 and "--dtype: expected one of bf16, f16, f32, f64" in err
    code, _, err = run(["hf", "m", "--examples", "e", "--out", "o", "--bogus"])
    assert code == 64 and "unrecognized arguments: --bogus" in err
    code, out, _ = run(["--version"])
    assert code == 0 and out.strip() == qkcapture.__version__


def test_parse_layers():
    assert parse_layers("0,4-7") == [0, 4, 5, 6, 7]
    assert parse_layers("3") == [3]
    for bad in ("a", "4-2", "1,,2", "-1"):
        with pytest.raises(UsageError):
            parse_layers(bad)


def test_runtime_errors_exit_1_and_write_nothing(tmp_path):
    code, _, err = run(["hf", str(tmp_path / "no-model"), "--examples", str(tmp_path / "none.jsonl"),
                        "--out", str(tmp_path / "cap")])
    assert code == 1 and err == f"Error: --examples: {tmp_path / 'none.jsonl'} is not a file\n"
    (tmp_path / "e.jsonl").write_text("{}\n")
    code, _, err = run(["hf", str(tmp_path / "no-model"), "--examples", str(tmp_path / "e.jsonl"),
                        "--out", str(tmp_path / "cap")])
    assert code == 1 and err.startswith("Error: model: cannot load a configuration from")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.jsonl"]


def test_the_module_runs_as_a_command():
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    done = subprocess.run([sys.executable, "-m", "qkcapture", "hf", "--help"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.startswith("OVERVIEW: Capture a Hugging Face")
    done = subprocess.run([sys.executable, "-m", "qkcapture", "hf"], capture_output=True, text=True, env=env)
    assert done.returncode == 64 and done.stderr.startswith("Error: ")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    pytest.importorskip("torch")
    from tiny_models import random_examples, tiny_model, word_tokenizer

    folder = tmp_path_factory.mktemp("tiny-llama")
    model, tokenizer = tiny_model("llama", attn_implementation="sdpa"), word_tokenizer()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    examples = random_examples(10, seed=11)
    path = folder / "examples.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in examples))
    return folder, model, tokenizer, examples


def test_hf_command_writes_the_same_capture_as_capture_hf(tmp_path, saved_model):
    folder, model, tokenizer, examples = saved_model
    code, out, err = run(["hf", str(folder), "--examples", str(folder / "examples.jsonl"), "--out",
                          str(tmp_path / "cli"), "--layers", "1", "--dtype", "f32", "--batch-size", "3",
                          "--checkpoint", "step5", "--features", "order=binding"])
    assert (code, err) == (0, ""), err
    assert out.startswith(f"Wrote {tmp_path / 'cli'}: {folder} @ step5, 10 prompts, 1 layers × 4 heads (2 kv), d_head 8")
    cli = qkcapture.read_capture(tmp_path / "cli")
    assert cli.header["model"]["name"] == str(folder) and cli.header["model"]["checkpoint"] == "step5"
    assert cli.header["features"] == {"category": {"kind": "semantic"}, "order": {"kind": "binding"}}
    assert cli.header["dataset"]["examples"] == "examples.jsonl"
    direct = qkcapture.read_capture(qkcapture.capture_hf(model, tokenizer, examples, tmp_path / "direct",
                                                         layers=[1], model_name="x", dtype="f32"))
    assert cli.prompts == direct.prompts
    for name in ("layers.1.q", "layers.1.k"):
        # Equal to float32 rounding (the batches differ: 3 prompts a batch against 8).
        np.testing.assert_allclose(cli.tensors[name], direct.tensors[name], rtol=0, atol=4e-6)
    # An existing capture is refused before the model is loaded, and kept.
    code, _, err = run(["hf", str(folder), "--examples", str(folder / "examples.jsonl"), "--out", str(tmp_path / "cli")])
    assert code == 1 and "exists and is not empty; pass --overwrite" in err
    assert qkcapture.read_capture(tmp_path / "cli").header == cli.header


def test_hf_command_reports_a_bad_example_by_line(tmp_path, saved_model):
    folder, _, _, examples = saved_model
    bad = [dict(e) for e in examples[:3]]
    bad[1] = dict(bad[1], keys=[{"char_span": [4, 5]}])
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(e) + "\n" for e in bad))
    code, _, err = run(["hf", str(folder), "--examples", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "cap")])
    assert code == 1
    assert err.startswith(f"Error: prompt 'ex1': {tmp_path / 'bad.jsonl'}:2: keys[0].char_span: [4, 5] (' ') overlaps no token")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_unsupported_model_type_is_refused_before_loading_weights(tmp_path):
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt" / "config.json").write_text(json.dumps({"model_type": "opt"}))
    (tmp_path / "e.jsonl").write_text("{}\n")
    pytest.importorskip("transformers")
    code, _, err = run(["hf", str(tmp_path / "opt"), "--examples", str(tmp_path / "e.jsonl"), "--out", str(tmp_path / "c")])
    assert code == 1 and "model type 'opt' is not supported; supported: bert, gemma2" in err
