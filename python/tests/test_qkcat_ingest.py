"""A capture written here, ingested by the qkcat executable, gives the contrast computed from the
same vectors by an independent numpy implementation (pairs enumerated one by one)."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

from conftest import make_writer, random_prompt, SPEC

REPO = pathlib.Path(__file__).resolve().parents[2]


def qkcat_binary():
    configured = os.environ.get("QKCAT_BIN")
    if configured:
        path = pathlib.Path(configured)
        if not path.is_absolute():
            path = REPO / path
        assert path.exists(), f"QKCAT_BIN={configured} does not exist (make test builds it)"
        return path
    path = REPO / ".build" / "debug" / "qkcat"
    if not path.exists():
        pytest.skip("the qkcat executable is not built (make test builds it and sets QKCAT_BIN)")
    return path


def contrast(capture_prompts, Q, K, kv_map, feature):
    """ΔC per head, by enumerating pairs: mean q kᵀ over positive minus over negative pairs; and the
    matching sums of the terms' magnitudes, which bound the engine's float32 rounding."""
    H, d = Q.shape[1], Q.shape[2]
    plus, minus = np.zeros((H, d, d)), np.zeros((H, d, d))
    plus_abs, minus_abs = np.zeros((H, d, d)), np.zeros((H, d, d))
    n_plus = n_minus = 0
    k0 = 0
    for p, prompt in enumerate(capture_prompts):
        qv = prompt["query_labels"].get(feature)
        for j, key in enumerate(prompt["keys"]):
            kv = key["labels"].get(feature)
            if qv is not None and kv is not None:
                outer = np.einsum("hi,hj->hij", Q[p].astype(np.float64), K[k0 + j][kv_map].astype(np.float64))
                if kv == qv:
                    plus += outer
                    plus_abs += np.abs(outer)
                    n_plus += 1
                else:
                    minus += outer
                    minus_abs += np.abs(outer)
                    n_minus += 1
        k0 += len(prompt["keys"])
    return plus / n_plus - minus / n_minus, plus_abs / n_plus + minus_abs / n_minus, n_plus, n_minus


def test_ingested_python_capture_matches_numpy_contrast(tmp_path):
    binary = qkcat_binary()
    rng = np.random.default_rng(7)
    prompts = [random_prompt(rng, i, n_keys=4) for i in range(60)]
    capture = tmp_path / "capture"
    with make_writer(capture, dtype="f32") as writer:
        for prompt in prompts:
            writer.add_prompt(**prompt)
    db = tmp_path / "catalog.sqlite"
    subprocess.run([binary, "ingest", capture, "--db", db, "--energy", "1", "--quiet"], check=True)
    exported = subprocess.run([binary, "export", "--db", db, "--feature", "category"], check=True,
                              capture_output=True, text=True).stdout
    records = {(r["layer"], r["head"]): r for r in map(json.loads, exported.splitlines())}

    kv_map = np.arange(SPEC["n_heads"]) // (SPEC["n_heads"] // SPEC["n_kv_heads"])
    assert len(records) == len(SPEC["layers"]) * SPEC["n_heads"]
    for layer in SPEC["layers"]:
        Q = np.stack([p["q"][layer] for p in prompts])                 # [P, H, d]
        K = np.concatenate([p["k"][layer] for p in prompts])          # [K, Hkv, d]
        delta, magnitude, n_plus, n_minus = contrast(prompts, Q, K, kv_map, "category")
        for head in range(SPEC["n_heads"]):
            record = records[(layer, head)]
            assert record["kv_head"] == kv_map[head]
            assert (record["n_pos_pairs"], record["n_neg_pairs"]) == (n_plus, n_minus)
            expected = np.linalg.svd(delta[head], compute_uv=False)
            np.testing.assert_allclose(record["singular_values"], expected, rtol=1e-5, atol=1e-6 * expected[0])
            # The engine sums ΔC in float32 over blocks of 64 prompts (4 keys each here), the blocks in float64:
            # each entry is within (64 + 4 + 2) · 2⁻²⁴ of the sum of its terms' magnitudes.
            allowed = (64 + 4 + 2) * 2.0**-24 * np.linalg.norm(magnitude[head])
            assert abs(record["frobenius"] - np.linalg.norm(delta[head])) <= allowed
            # With energy 1 every component is kept: Σ σ u vᵀ rebuilds ΔC (u, v stored as float32).
            rebuilt = sum(c["sigma"] * np.outer(c["u"], c["v"]) for c in record["components"])
            np.testing.assert_allclose(rebuilt, delta[head], atol=1e-5 * expected[0])
