"""Every validation rule of the writer: a CaptureError naming the field (and the prompt), nothing written."""
import copy
import os

import numpy as np
import pytest

import qkcapture
from qkcapture import CaptureError

from conftest import SPEC, make_writer, random_prompt

# ------------------------------------------------------------------------------ constructor
CONSTRUCTOR_CASES = [
    ("model", "", "model", "non-empty string"),
    ("checkpoint", None, "checkpoint", "non-empty string"),
    ("n_layers", 0, "n_layers", "positive integer"),
    ("n_layers", 2.5, "n_layers", "positive integer"),
    ("n_heads", True, "n_heads", "positive integer"),
    ("n_kv_heads", -2, "n_kv_heads", "positive integer"),
    ("d_head", "8", "d_head", "positive integer"),
    ("n_kv_heads", 3, "n_kv_heads", "n_heads (4) must be a multiple of n_kv_heads (3)"),
    ("layers", [], "layers", "at least one layer"),
    ("layers", 3, "layers", "list of layer numbers"),
    ("layers", [4], "layers", "layer 4 is outside 0..3"),
    ("layers", [-1], "layers", "layer -1 is outside 0..3"),
    ("layers", [1, 1], "layers", "layer 1 is listed twice"),
    ("layers", ["1"], "layers", "must be integers"),
    ("features", ["category"], "features", "must be a dict"),
    ("features", {"": {"kind": "semantic"}}, "features", "non-empty strings"),
    ("features", {"category": 3}, "features['category']", "must be a dict with 'kind'"),
    ("features", {"category": {"kind": "semantic", "desc": "x"}}, "features['category']", "unknown field(s) ['desc']"),
    ("features", {"category": {"description": "x"}}, "features['category'].kind", "non-empty string"),
    ("features", {"category": {"kind": "semantic", "description": 5}}, "features['category'].description", "must be a string"),
    ("positional", "rope", "positional", "post-rope, pre-rope, none"),
    ("dtype", "int8", "dtype", "unknown dtype 'int8'"),
    ("dtype", 16, "dtype", "must be a string"),
    ("dataset", ["x"], "dataset", "JSON object"),
    ("dataset", {"seed": {1, 2}}, "dataset", "not JSON-serializable"),
    ("dataset", {"x": float("nan")}, "dataset", "not JSON-serializable"),
    ("tensor_file", "acts.bin", "tensor_file", "ending in .safetensors"),
    ("tensor_file", "sub/acts.safetensors", "tensor_file", "plain file name"),
]


@pytest.mark.parametrize("name, value, field, text", CONSTRUCTOR_CASES)
def test_constructor_rejects(tmp_path, name, value, field, text):
    with pytest.raises(CaptureError) as info:
        make_writer(tmp_path / "cap", **{name: value})
    assert info.value.field == field
    assert text in info.value.message
    assert info.value.prompt is None
    assert os.listdir(tmp_path) == []  # not even a working directory


def test_capture_error_is_a_value_error_with_readable_text():
    error = CaptureError("keys[2].position", "must be an integer in 0..5, got 9", "p3")
    assert isinstance(error, ValueError)
    assert str(error) == "prompt 'p3': keys[2].position: must be an integer in 0..5, got 9"


def test_target_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "cap").write_text("x")
    with pytest.raises(CaptureError, match="exists and is not a directory") as info:
        make_writer(tmp_path / "cap")
    assert info.value.field == "path"


def test_non_empty_target_is_refused_unless_overwrite(tmp_path, rng):
    (tmp_path / "cap").mkdir()
    (tmp_path / "cap" / "old.txt").write_text("keep me")
    with pytest.raises(CaptureError, match="exists and is not empty; pass overwrite=True") as info:
        make_writer(tmp_path / "cap")
    assert info.value.field == "path"
    assert (tmp_path / "cap" / "old.txt").read_text() == "keep me"
    with make_writer(tmp_path / "cap", overwrite=True) as w:
        w.add_prompt(**random_prompt(rng, 0))
    assert sorted(os.listdir(tmp_path / "cap")) == ["activations.safetensors", "capture.json", "prompts.jsonl"]
    assert os.listdir(tmp_path) == ["cap"]


def test_empty_existing_target_directory_is_used(tmp_path, rng):
    (tmp_path / "cap").mkdir()
    with make_writer(tmp_path / "cap") as w:
        w.add_prompt(**random_prompt(rng, 0))
    assert len(qkcapture.read_capture(tmp_path / "cap").prompts) == 1


# ------------------------------------------------------------------------------- add_prompt
def mutate(path, value):
    """A function that sets `path` (a tuple of keys into the prompt dict) to `value`."""
    def apply(prompt):
        target = prompt
        for part in path[:-1]:
            target = target[part]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value(target[path[-1]]) if callable(value) else value
        return prompt
    return apply


DELETE = object()

PROMPT_CASES = [
    # (case id, change, field, text, prompt id in the error)
    ("empty id", mutate(("prompt_id",), ""), "id", "non-empty string", None),
    ("int id", mutate(("prompt_id",), 7), "id", "non-empty string", None),
    ("tokens as a string", mutate(("tokens",), "apple banana"), "tokens", "list of token strings", "p1"),
    ("no tokens", mutate(("tokens",), []), "tokens", "must not be empty", "p1"),
    ("token not a string", mutate(("tokens", 2), 42), "tokens[2]", "must be a string, got 42", "p1"),
    ("query position too large", mutate(("query_position",), 7), "query_position", "integer in 0..6, got 7", "p1"),
    ("query position negative", mutate(("query_position",), -1), "query_position", "integer in 0..6, got -1", "p1"),
    ("query position a string", mutate(("query_position",), "3"), "query_position", "got '3'", "p1"),
    ("query position a bool", mutate(("query_position",), True), "query_position", "got True", "p1"),
    ("query labels a list", mutate(("query_labels",), ["fruit"]), "query_labels", "must be a dict", "p1"),
    ("query label undeclared", mutate(("query_labels",), {"colour": "red"}), "query_labels",
     "label 'colour' is not a declared feature (declared: category, order)", "p1"),
    ("query label not a string", mutate(("query_labels",), {"order": 3}), "query_labels['order']",
     "label values must be strings, got 3; use str(...)", "p1"),
    ("keys a dict", mutate(("keys",), {"position": 1}), "keys", "must be a list", "p1"),
    ("key not a dict", mutate(("keys", 1), 4), "keys[1]", "must be a dict", "p1"),
    ("key misspelt field", mutate(("keys", 1, "label"), {"category": "fruit"}), "keys[1]", "unknown field(s) ['label']", "p1"),
    ("key without position", mutate(("keys", 0, "position"), DELETE), "keys[0].position", "got None", "p1"),
    ("key position outside tokens", mutate(("keys", 2, "position"), 99), "keys[2].position", "integer in 0..6, got 99", "p1"),
    ("key label undeclared", mutate(("keys", 0, "labels"), {"size": "big"}), "keys[0].labels",
     "label 'size' is not a declared feature", "p1"),
    ("key label not a string", mutate(("keys", 0, "labels", "order"), 0), "keys[0].labels['order']", "got 0", "p1"),
    ("q layer missing", mutate(("q", 3), DELETE), "q", "no array for layer(s) [3]", "p1"),
    ("q extra layer", mutate(("q", 2), np.zeros((4, 8))), "q", "layer(s) [2] are not among the captured layers [1, 3]", "p1"),
    ("q wrong shape", mutate(("q", 3), np.zeros((4, 7))), "q[layer 3]", "has shape [4, 7], expected [4, 8]", "p1"),
    ("q kv-head shape", mutate(("q", 1), np.zeros((2, 8))), "q[layer 1]", "has shape [2, 8], expected [4, 8]", "p1"),
    ("q not numbers", mutate(("q", 1), np.full((4, 8), "x")), "q[layer 1]", "must hold real numbers", "p1"),
    ("q booleans", mutate(("q", 1), np.zeros((4, 8), dtype=bool)), "q[layer 1]", "must hold real numbers", "p1"),
    ("q not a mapping", mutate(("q",), "q"), "q", "must be a dict layer -> array", "p1"),
    ("q stacked wrong", mutate(("q",), np.zeros((3, 4, 8))), "q", "stacked in layer order; got shape [3, 4, 8]", "p1"),
    ("q NaN", mutate(("q", 3), lambda a: np.where(np.arange(8) == 5, np.nan, a)), "q[layer 3]",
     "non-finite value at index [0, 5]", "p1"),
    ("k infinity", mutate(("k", 1), lambda a: np.where(np.arange(8) == 2, -np.inf, a)), "k[layer 1]",
     "non-finite value at index [0, 0, 2]", "p1"),
    ("k count differs from keys", mutate(("k", 1), lambda a: a[:2]), "k[layer 1]", "has shape [2, 2, 8], expected [3, 2, 8]", "p1"),
    ("k heads given as query heads", mutate(("k", 3), np.zeros((3, 4, 8))), "k[layer 3]", "expected [3, 2, 8]", "p1"),
]


@pytest.mark.parametrize("case, change, field, text, prompt_id", PROMPT_CASES, ids=[c[0] for c in PROMPT_CASES])
def test_add_prompt_rejects_and_the_writer_stays_usable(tmp_path, rng, case, change, field, text, prompt_id):
    good_before = random_prompt(rng, 0)
    bad = change(copy.deepcopy(random_prompt(rng, 1)))
    good_after = random_prompt(rng, 2)
    with make_writer(tmp_path / "cap") as w:
        w.add_prompt(**good_before)
        with pytest.raises(CaptureError) as info:
            w.add_prompt(**bad)
        w.add_prompt(**good_after)
    assert info.value.field == field, str(info.value)
    assert text in info.value.message, str(info.value)
    assert info.value.prompt == prompt_id
    # Nothing of the rejected prompt reached the files.
    cap = qkcapture.read_capture(tmp_path / "cap")
    assert [p["id"] for p in cap.prompts] == ["p0", "p2"]
    for L in (1, 3):
        np.testing.assert_array_equal(cap.tensors.q(L)[1], qkcapture.bf16_bits_to_float32(
            qkcapture.float32_to_bf16_bits(good_after["q"][L])))
        assert cap.tensors.k(L).shape == (6, 2, 8)


def test_duplicate_id_names_the_prompt(tmp_path, rng):
    with make_writer(tmp_path / "cap") as w:
        w.add_prompt(**random_prompt(rng, 0))
        with pytest.raises(CaptureError, match="already used by an earlier prompt") as info:
            w.add_prompt(**random_prompt(rng, 0))
    assert info.value.field == "id" and info.value.prompt == "p0"
    assert len(qkcapture.read_capture(tmp_path / "cap").prompts) == 1


@pytest.mark.parametrize("dtype, value, limit", [("f16", 70000.0, "F16"), ("bf16", 3.4e38, "BF16")])
def test_values_that_overflow_the_dtype_are_refused(tmp_path, rng, dtype, value, limit):
    p = random_prompt(rng, 0)
    p["k"][3] = p["k"][3].copy()
    p["k"][3][2, 1, 4] = value
    with make_writer(tmp_path / "cap", dtype=dtype) as w:
        with pytest.raises(CaptureError) as info:
            w.add_prompt(**p)
        w.add_prompt(**random_prompt(rng, 1))
    assert info.value.field == "k[layer 3]"
    assert f"overflows {limit} at index [2, 1, 4]" in info.value.message


def test_f32_keeps_values_that_would_overflow_f16(tmp_path, rng):
    p = random_prompt(rng, 0)
    p["q"][1] = p["q"][1] * 0 + 70000.0
    with make_writer(tmp_path / "cap", dtype="f32") as w:
        w.add_prompt(**p)
    assert qkcapture.read_capture(tmp_path / "cap").tensors.q(1).max() == 70000.0


def test_closed_writer_refuses_prompts_and_a_second_close(tmp_path, rng):
    w = make_writer(tmp_path / "cap")
    w.add_prompt(**random_prompt(rng, 0))
    w.close()
    with pytest.raises(CaptureError, match="is closed; no more prompts") as info:
        w.add_prompt(**random_prompt(rng, 1))
    assert info.value.field == "writer"
    with pytest.raises(CaptureError, match="is closed; cannot close"):
        w.close()
