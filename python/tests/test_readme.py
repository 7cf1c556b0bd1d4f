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
