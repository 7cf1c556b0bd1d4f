"""The committed training trajectory (Examples/trajectory): the final checkpoint answers both
tasks, the category feature emerges in one head (its subspace moves from unrelated to final,
its σ₁ grows), and the training script reproduces the committed step0 capture."""
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qkcapture
from qkcapture import tasks
from test_qkcat_ingest import contrast as pair_contrast

TRAJECTORY = Path(__file__).resolve().parents[2] / "Examples" / "trajectory"


def training_script():
    """train.py as a module: its constants and data builders (importing it sets no global state)."""
    spec = importlib.util.spec_from_file_location("trajectory_train", TRAJECTORY / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checkpoints():
    """The committed captures, in training order."""
    found = [p for p in TRAJECTORY.iterdir() if p.is_dir() and re.fullmatch(r"step\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name[4:]))


def contrast(capture, layer, feature):
    """ΔC of every head for `feature`, pooled, by enumerating pairs (the ingest test's oracle)."""
    model = capture.header["model"]
    kv_map = np.arange(model["n_heads"]) // (model["n_heads"] // model["n_kv_heads"])
    prompts = [{"query_labels": p["query"].get("labels", {}), "keys": [{"labels": k.get("labels", {})} for k in p["keys"]]}
               for p in capture.prompts]
    delta = pair_contrast(prompts, capture.tensors.q(layer), capture.tensors.k(layer), kv_map, feature)[0]
    return delta


def decompose(delta, energy=0.99):
    u, s, vt = np.linalg.svd(delta)
    share = np.cumsum(s ** 2) / np.sum(s ** 2)
    rank = int(np.searchsorted(share, energy - 1e-12) + 1)
    return s[0], rank, u[:, :rank], vt[:rank].T


def similarity(a, b):
    """qkcat's subspace similarity: ‖AᵀB‖²_F / max rank, averaged over the query and key sides."""
    sides = [np.sum((x.T @ y) ** 2) / max(x.shape[1], y.shape[1]) for x, y in ((a[2], b[2]), (a[3], b[3]))]
    return float(np.mean(sides))


@pytest.fixture(scope="module")
def trajectory():
    steps = checkpoints()
    assert len(steps) >= 8, [p.name for p in steps]
    return [qkcapture.read_capture(p) for p in steps]


def test_captures_are_small_f16_and_record_accuracy(trajectory):
    size = sum(f.stat().st_size for p in checkpoints() for f in p.iterdir())
    assert size <= 15_000_000, size
    names = [c.header["model"]["checkpoint"] for c in trajectory]
    assert names[0] == "step0" and names == [p.name for p in checkpoints()]
    steps = [int(n[4:]) for n in names]
    # Like Pythia's: log-spaced at first (after step 1 each step doubles the previous one), then evenly spaced.
    doubles = [b == 2 * a for a, b in zip(steps[1:], steps[2:])]
    logarithmic = doubles.index(False) if False in doubles else len(doubles)
    assert logarithmic >= 6, steps
    linear = steps[logarithmic + 1:]
    assert len({b - a for a, b in zip(linear, linear[1:])}) <= 1, steps
    # ... and they are the checkpoints of the script as committed, from one training configuration.
    assert steps == training_script().SCHEDULE, steps
    for capture in trajectory:
        assert capture.header["dataset"]["training"] == trajectory[0].header["dataset"]["training"], capture.header["model"]
    for capture in trajectory:
        assert all(capture.tensors.dtype(name) == "F16" for name in capture.tensors)
        assert capture.header["model"]["name"] == trajectory[0].header["model"]["name"]
        accuracy = capture.header["dataset"]["accuracy"]
        assert set(accuracy) == {"filter", "binding"} and all(0 <= a <= 1 for a in accuracy.values())
    final = trajectory[-1].header["dataset"]["accuracy"]
    assert final["filter"] >= 0.9, final
    first = trajectory[0].header["dataset"]["accuracy"]
    assert first["filter"] < 0.5 and first["binding"] < 0.5, first


def test_the_final_checkpoint_answers_binding(trajectory):
    final = trajectory[-1].header["dataset"]["accuracy"]
    assert final["binding"] >= 0.9, final


def test_the_category_feature_emerges_in_one_head(trajectory):
    layer, head = category_head(trajectory[-1])
    path = [decompose(contrast(c, layer, "category")[head]) for c in trajectory]
    target = path[-1]
    sims = [similarity(state, target) for state in path]
    sigma = [state[0] for state in path]
    assert sims[0] < 0.5, sims
    assert sigma[-1] >= 3 * sigma[0], sigma
    # It moves towards its final subspace as it learns (some checkpoint is much closer than step0).
    assert max(sims[:-1]) > sims[0] + 0.2, sims


def test_the_category_subspace_settles_before_the_end(trajectory):
    layer, head = category_head(trajectory[-1])
    path = [decompose(contrast(c, layer, "category")[head]) for c in trajectory]
    sims = [similarity(state, path[-1]) for state in path]
    # Before the learning rate starts decaying: with a rate falling to zero any run would settle at the end.
    training = trajectory[-1].header["dataset"]["training"]
    decay_start = training["steps"] * (1 - training["decay"])
    steps = [int(capture.header["model"]["checkpoint"][4:]) for capture in trajectory]
    before_decay = [sim for step, sim in zip(steps, sims) if step <= decay_start and step < steps[-1]]
    assert max(before_decay) >= 0.9, list(zip(steps, sims))


def category_head(capture):
    """(layer, head) with the largest pooled category σ₁ in `capture`."""
    layers = capture.header["layers"]
    final = {L: [decompose(d) for d in contrast(capture, L, "category")] for L in layers}
    return max(((L, h) for L in layers for h in range(len(final[L]))), key=lambda lh: final[lh[0]][lh[1]][0])


def test_make_demo_shows_that_head_and_the_last_checkpoint(trajectory):
    makefile = (TRAJECTORY.parents[1] / "Makefile").read_text()
    value = {name: re.search(rf"^{name} := (\S+)$", makefile, re.M).group(1)
             for name in ("TRAJECTORY_LAYER", "TRAJECTORY_HEAD", "TRAJECTORY_LAST", "TRAJECTORY_MODEL")}
    assert (int(value["TRAJECTORY_LAYER"]), int(value["TRAJECTORY_HEAD"])) == category_head(trajectory[-1])
    assert value["TRAJECTORY_LAST"] == trajectory[-1].header["model"]["checkpoint"]
    assert value["TRAJECTORY_MODEL"] == trajectory[-1].header["model"]["name"]


def test_training_script_reproduces_the_committed_first_checkpoints(tmp_path):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    # In a process of its own: training sets torch's threads, seed and deterministic mode for good.
    subprocess.run([sys.executable, str(TRAJECTORY / "train.py"), "--stop-after", "2",
                    "--out", str(tmp_path / "captures"), "--work", str(tmp_path / "checkpoints")],
                   check=True, capture_output=True, timeout=600)
    assert sorted(p.name for p in (tmp_path / "captures").iterdir()) == ["step0", "step1", "step2"]
    for name in ("step0", "step1", "step2"):
        ours, committed = tmp_path / "captures" / name, TRAJECTORY / name
        assert json.loads((ours / "capture.json").read_text()) == json.loads((committed / "capture.json").read_text())
        assert (ours / "prompts.jsonl").read_bytes() == (committed / "prompts.jsonl").read_bytes()
        assert_same_tensors(qkcapture.read_capture(ours), qkcapture.read_capture(committed), name)
    # The saved checkpoint loads back and is the model that was captured.
    script = training_script()
    saved = tmp_path / "checkpoints" / "step2"
    # Eager attention, as trained and captured (a checkpoint does not record it; sdpa rounds otherwise).
    model = transformers.LlamaForCausalLM.from_pretrained(saved, attn_implementation="eager")
    tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(saved)
    examples = script.held_out()
    qkcapture.capture_hf(model, tokenizer, examples["filter"] + examples["binding"], tmp_path / "reloaded",
                         model_name=script.MODEL_NAME, checkpoint="step2", features=tasks.FEATURES,
                         dtype="f16", progress=False)
    assert_same_tensors(qkcapture.read_capture(tmp_path / "reloaded"), qkcapture.read_capture(TRAJECTORY / "step2"), "reloaded")


def assert_same_tensors(mine, theirs, name):
    assert sorted(mine.tensors) == sorted(theirs.tensors)
    for tensor in theirs.tensors:
        a, b = mine.tensors[tensor], theirs.tensors[tensor]
        # Equal on this machine; elsewhere another CPU's matmul kernels (or another thread count) may
        # round a value to the neighbouring float16, and no further.
        ulp = np.maximum(np.spacing(np.abs(a).astype(np.float16)), np.spacing(np.abs(b).astype(np.float16)))
        assert np.all(np.abs(a - b) <= ulp.astype(np.float32)), (name, tensor, float(np.max(np.abs(a - b))))
