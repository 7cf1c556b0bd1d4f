"""Write captures in every dtype and read them back; check the bytes with an independent parser."""
import json
import os
import struct

import numpy as np
import pytest

import qkcapture
from qkcapture import bf16_bits_to_float32, float32_to_bf16_bits

from conftest import SPEC, make_writer, random_prompt


def parse_safetensors(path):
    """Minimal, independent safetensors parse: (header dict, data bytes)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:], 8 + n


def expected_stored(x, dtype):
    """What the file must hold for float32 input `x`, as float32."""
    if dtype == "bf16":
        return bf16_bits_to_float32(float32_to_bf16_bits(x))
    if dtype == "f16":
        return x.astype(np.float16).astype(np.float32)
    return x.astype(np.float32)


@pytest.mark.parametrize("dtype, stored_name", [("f32", "F32"), ("f16", "F16"), ("bf16", "BF16"), ("f64", "F64")])
def test_round_trip_every_dtype(tmp_path, rng, dtype, stored_name):
    prompts = [random_prompt(rng, i, n_keys=i % 4) for i in range(7)]  # includes prompts with no keys
    target = tmp_path / "cap"
    with make_writer(target, dtype=dtype, dataset={"name": "unit", "seed": 1234}) as w:
        for p in prompts:
            w.add_prompt(**p)
    assert sorted(os.listdir(target)) == ["activations.safetensors", "capture.json", "prompts.jsonl"]

    cap = qkcapture.read_capture(target)
    h = cap.header
    assert h["format"] == "qk-capture" and h["version"] == 1
    assert h["model"] == {"name": SPEC["model"], "checkpoint": SPEC["checkpoint"], "n_layers": 4,
                          "n_heads": 4, "n_kv_heads": 2, "d_head": 8}
    assert h["positional"] == "post-rope" and h["layers"] == [1, 3]
    assert h["tensor_files"] == ["activations.safetensors"]
    assert h["features"] == SPEC["features"]
    assert h["dataset"] == {"name": "unit", "seed": 1234}

    assert [p["id"] for p in cap.prompts] == [p["prompt_id"] for p in prompts]
    for got, sent in zip(cap.prompts, prompts):
        assert got["tokens"] == sent["tokens"]
        assert got["query"] == {"position": sent["query_position"], "labels": sent["query_labels"]}
        assert got["keys"] == sent["keys"]

    total_keys = sum(len(p["keys"]) for p in prompts)
    for L in SPEC["layers"]:
        q_sent = np.stack([p["q"][L] for p in prompts])
        k_sent = np.concatenate([p["k"][L] for p in prompts])
        assert cap.tensors.q(L).shape == (7, 4, 8) and cap.tensors.k(L).shape == (total_keys, 2, 8)
        assert cap.tensors.q(L).dtype == np.float32
        np.testing.assert_array_equal(cap.tensors.q(L), expected_stored(q_sent, dtype))
        np.testing.assert_array_equal(cap.tensors.k(L), expected_stored(k_sent, dtype))
        assert cap.tensors.dtype(f"layers.{L}.q") == stored_name

    # The file itself, read without qkcapture: dtype names, shapes, contiguous offsets, aligned data.
    header, data, data_start = parse_safetensors(target / "activations.safetensors")
    assert data_start % 8 == 0
    assert set(header) == {"layers.1.q", "layers.1.k", "layers.3.q", "layers.3.k"}
    spans = sorted(tuple(v["data_offsets"]) for v in header.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    for v in header.values():
        assert v["dtype"] == stored_name
    q1 = header["layers.1.q"]
    raw = data[q1["data_offsets"][0]:q1["data_offsets"][1]]
    if dtype == "bf16":
        bits = np.frombuffer(raw, dtype="<u2").reshape(q1["shape"])
        np.testing.assert_array_equal(bits, float32_to_bf16_bits(np.stack([p["q"][1] for p in prompts])))


def test_prompts_jsonl_is_one_compact_line_per_prompt_in_order(tmp_path, rng):
    with make_writer(tmp_path / "cap") as w:
        for i in range(3):
            w.add_prompt(**random_prompt(rng, i))
    lines = (tmp_path / "cap" / "prompts.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["p0", "p1", "p2"]


def test_unlabelled_keys_unicode_tokens_stacked_arrays_and_float64_input(tmp_path, rng):
    tokens = ["<s>", " pomme", " 🍎", " ñandú", "?"]
    keys = [{"position": 1, "labels": {"category": "fruit"}}, {"position": 3}, {"position": 2, "labels": {}}]
    q = rng.standard_normal((2, 4, 8))          # float64, stacked in layer order
    k = rng.standard_normal((2, 3, 2, 8))
    with make_writer(tmp_path / "cap", dtype="f32") as w:
        w.add_prompt("ü-1", tokens=tokens, query_position=4, keys=keys, q=q, k=k)
    cap = qkcapture.read_capture(tmp_path / "cap")
    p = cap.prompts[0]
    assert p["tokens"] == tokens and p["id"] == "ü-1"
    assert p["query"] == {"position": 4}
    assert p["keys"] == [{"position": 1, "labels": {"category": "fruit"}}, {"position": 3}, {"position": 2}]
    np.testing.assert_array_equal(cap.tensors.q(3), q[1:2].astype(np.float32))
    np.testing.assert_array_equal(cap.tensors.k(1), k[0].astype(np.float32))


def test_multi_head_attention_and_other_positional_kinds(tmp_path, rng):
    spec = dict(SPEC, n_heads=3, n_kv_heads=3, d_head=5, layers=[0], positional="none")
    with make_writer(tmp_path / "cap", **{k: v for k, v in spec.items() if k != "model"}) as w:
        for i in range(2):
            w.add_prompt(**random_prompt(rng, i, spec=spec))
    cap = qkcapture.read_capture(tmp_path / "cap")
    assert cap.header["positional"] == "none"
    assert cap.tensors.q(0).shape == (2, 3, 5) and cap.tensors.k(0).shape == (6, 3, 5)


def test_read_capture_unpacks_as_header_prompts_tensors(tmp_path, rng):
    with make_writer(tmp_path / "cap") as w:
        w.add_prompt(**random_prompt(rng, 0))
    header, prompts, tensors = qkcapture.read_capture(tmp_path / "cap")
    assert header["layers"] == [1, 3] and len(prompts) == 1 and set(tensors) >= {"layers.1.q"}
    assert isinstance(tensors.raw("layers.1.q"), np.memmap) or isinstance(tensors.raw("layers.1.q").base, np.memmap)


def test_layers_are_written_sorted_whatever_order_given(tmp_path, rng):
    with make_writer(tmp_path / "cap", layers=[3, 1]) as w:
        w.add_prompt(**random_prompt(rng, 0))
    assert qkcapture.read_capture(tmp_path / "cap").header["layers"] == [1, 3]


def test_close_returns_path_and_writer_usable_without_with(tmp_path, rng):
    w = make_writer(tmp_path / "cap")
    w.add_prompt(**random_prompt(rng, 0))
    assert w.close() == str(tmp_path / "cap")
    assert w.prompt_count == 1 and w.key_count == 3
