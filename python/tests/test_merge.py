"""merge: shards of one capture joined without copying tensors, and refused when they do not fit."""
import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import qkcapture
from conftest import SPEC, make_writer, random_prompt
from qkcapture.cli import main

REPO = pathlib.Path(__file__).resolve().parents[2]


def write_shard(path, rng, ids, rank=None, world_size=None, **overrides):
    dataset = {"name": "unit"}
    if rank is not None:
        dataset["shard"] = {"rank": rank, "world_size": world_size}
    overrides.setdefault("dataset", dataset)
    spec = {**SPEC, **{k: v for k, v in overrides.items() if k in SPEC}}
    with make_writer(path, dtype=overrides.pop("dtype", "f32"), **overrides) as writer:
        for index in ids:
            writer.add_prompt(**random_prompt(rng, index, spec=spec))
    return path


def leftovers(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir() if p.name.startswith("."))


def test_merged_capture_is_the_shards_in_rank_order_with_linked_tensors(tmp_path, rng):
    one = write_shard(tmp_path / "r1", rng, [1, 3], rank=1, world_size=2)
    zero = write_shard(tmp_path / "r0", rng, [0, 2, 4], rank=0, world_size=2)
    merged = qkcapture.merge([one, zero], tmp_path / "merged")
    cap = qkcapture.read_capture(merged)
    shards = [qkcapture.read_capture(zero), qkcapture.read_capture(one)]
    assert [p["id"] for p in cap.prompts] == ["p0", "p2", "p4", "p1", "p3"]
    assert cap.header["tensor_files"] == ["shard-00000/activations.safetensors", "shard-00001/activations.safetensors"]
    assert cap.header["dataset"] == {"name": "unit", "merged_shards": 2}
    assert {k: v for k, v in cap.header.items() if k not in ("tensor_files", "dataset")} == \
        {k: v for k, v in shards[0].header.items() if k not in ("tensor_files", "dataset")}
    for name in shards[0].tensors:
        np.testing.assert_array_equal(cap.tensors[name], np.concatenate([s.tensors[name] for s in shards]))
    for rank, shard in enumerate((zero, one)):  # the same file, not a copy
        linked = os.stat(merged + f"/shard-{rank:05d}/activations.safetensors")
        assert linked.st_ino == os.stat(shard / "activations.safetensors").st_ino
    assert leftovers(tmp_path) == []


def test_shards_cut_by_hand_are_joined_in_the_order_given(tmp_path, rng):
    first = write_shard(tmp_path / "a", rng, [5, 6], dataset=None)
    second = write_shard(tmp_path / "b", rng, [7], dataset=None)
    cap = qkcapture.read_capture(qkcapture.merge([second, first], tmp_path / "m"))
    assert [p["id"] for p in cap.prompts] == ["p7", "p5", "p6"]


@pytest.mark.parametrize("damage, field, message", [
    (dict(model="other/model"), "r1: capture.json: model", "shards must share the model"),
    (dict(checkpoint="step5"), "r1: capture.json: model", '"checkpoint": "step5"'),
    (dict(layers=[1]), "r1: capture.json: layers", "[1] differs from"),
    (dict(features={"category": {"kind": "semantic"}, "order": {"kind": "semantic"}}), "r1: capture.json: features",
     "shards must share the features"),
    (dict(positional="none"), "r1: capture.json: positional", "shards must share the positional"),
    (dict(dtype="bf16"), "r1: tensor 'layers.1.q'", "is BF16 where"),
    (dict(dataset={"name": "else", "shard": {"rank": 1, "world_size": 2}}), "r1: capture.json: dataset",
     "(the shard numbers aside)"),
    (dict(ids=[1, 2]), "r1: prompts.jsonl", "prompt id 'p2' is in"),
    (dict(rank=0), "r1: capture.json: dataset.shard", "rank 0 of 2 is also"),
    (dict(world_size=3), "shards", "different world sizes"),
    (dict(dataset={"name": "unit"}), "r1: capture.json: dataset.shard", "is missing while other shards have one"),
])
def test_shards_that_do_not_fit_are_refused_and_nothing_is_written(tmp_path, rng, damage, field, message):
    write_shard(tmp_path / "r0", rng, [0, 2], rank=0, world_size=2)
    damage = dict(damage)
    ids = damage.pop("ids", [1, 3])
    rank, world_size = damage.pop("rank", 1), damage.pop("world_size", 2)
    write_shard(tmp_path / "r1", rng, ids, rank=rank, world_size=world_size, **damage)
    os.chdir(tmp_path)  # errors name the shards as given
    with pytest.raises(qkcapture.CaptureError) as error:
        qkcapture.merge(["r0", "r1"], tmp_path / "merged")
    assert error.value.field == field
    assert message in error.value.message, error.value.message
    assert not (tmp_path / "merged").exists() and leftovers(tmp_path) == []


def test_a_missing_rank_a_repeated_folder_and_an_existing_target_are_refused(tmp_path, rng):
    zero = write_shard(tmp_path / "r0", rng, [0], rank=0, world_size=3)
    two = write_shard(tmp_path / "r2", rng, [2], rank=2, world_size=3)
    with pytest.raises(qkcapture.CaptureError, match=r"rank\(s\) \[1\] of world size 3 are missing"):
        qkcapture.merge([zero, two], tmp_path / "merged")
    with pytest.raises(qkcapture.CaptureError, match="is twice in"):
        qkcapture.merge([zero, zero], tmp_path / "merged")
    with pytest.raises(qkcapture.CaptureError, match="is one of the shards"):
        qkcapture.merge([zero, two], zero)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("x")
    with pytest.raises(qkcapture.CaptureError, match="exists and is not empty"):
        qkcapture.merge([zero], tmp_path / "full")
    assert (tmp_path / "full" / "keep").read_text() == "x"
    with pytest.raises(qkcapture.CaptureError, match="r9: capture.json"):
        qkcapture.merge([zero, tmp_path / "r9"], tmp_path / "merged")
    assert not (tmp_path / "merged").exists() and leftovers(tmp_path) == []


def test_tensor_files_outside_the_capture_are_refused_on_reading(tmp_path, rng):
    path = write_shard(tmp_path / "cap", rng, [0])
    header = json.loads((path / "capture.json").read_text())
    for bad in ("../cap/activations.safetensors", "/etc/passwd", "a//b.safetensors"):
        header["tensor_files"] = [bad]
        (path / "capture.json").write_text(json.dumps(header))
        with pytest.raises(qkcapture.CaptureError, match="relative path inside the capture folder"):
            qkcapture.read_capture(path)


def test_merge_command(tmp_path, rng):
    zero = write_shard(tmp_path / "r0", rng, [0], rank=0, world_size=2)
    one = write_shard(tmp_path / "r1", rng, [1], rank=1, world_size=2)
    out, err = io.StringIO(), io.StringIO()
    assert main(["merge", str(zero), str(one), "--out", str(tmp_path / "m")], out, err) == 0, err.getvalue()
    assert "Merged 2 shards" in out.getvalue() and "2 prompts" in out.getvalue()
    assert main(["merge", str(zero), str(zero), "--out", str(tmp_path / "m2")], out, err) == 1
    assert "Error: " in err.getvalue() and not (tmp_path / "m2").exists()
    assert main(["merge", "--out", str(tmp_path / "m3")], out, err) == 64
    help_out = io.StringIO()
    assert main(["help", "merge"], help_out, err) == 0 and "<shard> ..." in help_out.getvalue()


# ---------------------------------------------------------------------------- torch.distributed
torch_needed = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("torch", "transformers")), reason="needs the hf extra")


def export_without_ids(binary, capture, db):
    subprocess.run([binary, "ingest", capture, "--db", db, "--energy", "1", "--per-value", "-q"], check=True)
    lines = subprocess.run([binary, "export", "--db", db], check=True, capture_output=True, text=True).stdout

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "id"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [strip(json.loads(line)) for line in lines.splitlines()]


@torch_needed
def test_two_torch_distributed_workers_give_the_single_process_capture(tmp_path):
    from test_qkcat_ingest import qkcat_binary
    from tiny_models import random_examples, tiny_model, word_tokenizer

    model_dir = tmp_path / "model"
    tiny_model("llama").save_pretrained(model_dir)
    word_tokenizer().save_pretrained(model_dir)
    examples = random_examples(9, seed=6)
    with open(tmp_path / "examples.jsonl", "w") as f:
        for example in examples:
            f.write(json.dumps(example) + "\n")
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(qkcapture.__file__)))  # the qkcapture under test
    env = dict(os.environ, HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(REPO / "Examples/distributed/capture_dp.py"), str(model_dir), "examples.jsonl",
                          "merged", "--batch-size", "1", "--dtype", "f32"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[:6000]
    assert not (tmp_path / "merged.shards").exists()
    merged = qkcapture.read_capture(tmp_path / "merged")
    assert merged.header["tensor_files"] == ["shard-00000/activations.safetensors", "shard-00001/activations.safetensors"]

    # One process, the same examples in the merged order (rank 0's, then rank 1's), one prompt a batch.
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    reordered = examples[0::2] + examples[1::2]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as torchrun's workers: CPU kernels round alike for one thread
    try:
        single = qkcapture.capture_hf(model, word_tokenizer(), reordered, tmp_path / "single", dtype="f32",
                                      batch_size=1, model_name=str(model_dir), dataset=merged.header["dataset"])
        ordered = qkcapture.capture_hf(model, word_tokenizer(), examples, tmp_path / "ordered", dtype="f32",
                                       batch_size=1, model_name=str(model_dir))
    finally:
        torch.set_num_threads(threads)
    single_cap = qkcapture.read_capture(single)
    assert single_cap.prompts == merged.prompts
    for name in single_cap.tensors:
        np.testing.assert_array_equal(merged.tensors[name], single_cap.tensors[name])

    binary = qkcat_binary()
    exported = export_without_ids(binary, tmp_path / "merged", tmp_path / "merged.sqlite")
    assert len(exported) > 0 and any(record["value"] is not None for record in exported)
    assert exported == export_without_ids(binary, single, tmp_path / "single.sqlite")
    # In the examples' own order the sums run in another order: the same spectra to rounding.
    for mine, theirs in zip(exported, export_without_ids(binary, ordered, tmp_path / "ordered.sqlite")):
        assert (mine["layer"], mine["head"], mine["feature"], mine["value"]) == \
            (theirs["layer"], theirs["head"], theirs["feature"], theirs["value"])
        np.testing.assert_allclose(mine["singular_values"], theirs["singular_values"], rtol=1e-4,
                                   atol=1e-5 * max(theirs["singular_values"]))
