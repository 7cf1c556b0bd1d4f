"""read_capture refuses what the format forbids, naming the file and field."""
import json
import struct

import pytest

import qkcapture
from qkcapture import CaptureError

from conftest import make_writer, random_prompt


@pytest.fixture
def capture(tmp_path, rng):
    with make_writer(tmp_path / "cap") as w:
        for i in range(3):
            w.add_prompt(**random_prompt(rng, i))
    return tmp_path / "cap"


def edit_header(capture, change):
    path = capture / "capture.json"
    header = json.loads(path.read_text())
    change(header)
    path.write_text(json.dumps(header))


def test_newer_version_is_refused_as_such(capture):
    edit_header(capture, lambda h: h.update(version=2))
    with pytest.raises(CaptureError, match="version 2 is newer than this qkcapture reads \\(1\\)") as info:
        qkcapture.read_capture(capture)
    assert info.value.field == "capture.json: version"


@pytest.mark.parametrize("change, field, text", [
    (lambda h: h.update(format="qk"), "capture.json: format", "must be 'qk-capture'"),
    (lambda h: h.update(version="1"), "capture.json: version", "must be an integer"),
    (lambda h: h["model"].update(n_kv_heads=3), "capture.json: model.n_kv_heads", "multiple"),
    (lambda h: h["model"].update(d_head=0), "capture.json: model.d_head", "positive integer"),
    (lambda h: h.update(layers=[7]), "capture.json: layers", "below n_layers"),
    (lambda h: h.update(layers=[0, 1, 3]), "tensor 'layers.0.q'", "missing from every tensor file"),
    (lambda h: h["model"].update(d_head=4), "activations.safetensors: tensor 'layers.1.q'", "expected [3, 4, 4]"),
])
def test_bad_header(capture, change, field, text):
    edit_header(capture, change)
    with pytest.raises(CaptureError) as info:
        qkcapture.read_capture(capture)
    assert info.value.field == field and text in info.value.message


def test_extra_prompt_line_makes_the_q_shape_wrong(capture):
    with open(capture / "prompts.jsonl", "a") as f:
        f.write(json.dumps({"id": "extra", "tokens": ["a"], "query": {"position": 0}, "keys": []}) + "\n")
    with pytest.raises(CaptureError, match=r"has shape \[3, 4, 8\], expected \[4, 4, 8\]"):
        qkcapture.read_capture(capture)


def test_invalid_json_line_names_the_line(capture):
    with open(capture / "prompts.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(CaptureError) as info:
        qkcapture.read_capture(capture)
    assert info.value.field == "prompts.jsonl:4"


def test_offsets_outside_the_file_are_refused(capture):
    path = capture / "activations.safetensors"
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header["layers.3.k"]["data_offsets"][1] += 2
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + blob[8 + n:])
    with pytest.raises(CaptureError, match="lie outside the data"):
        qkcapture.read_capture(capture)


def test_truncated_tensor_file_is_refused(capture):
    path = capture / "activations.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CaptureError, match="outside the data"):
        qkcapture.read_capture(capture)


def test_missing_directory(tmp_path):
    with pytest.raises(CaptureError, match="cannot be read") as info:
        qkcapture.read_capture(tmp_path / "nowhere")
    assert info.value.field == "capture.json"
