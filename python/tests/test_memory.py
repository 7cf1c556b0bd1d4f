"""The writer's memory depends on one prompt's tensors, never on the number of prompts."""
import tracemalloc

import numpy as np

from conftest import SPEC, make_writer

SHAPE = dict(SPEC, n_layers=4, n_heads=8, n_kv_heads=4, d_head=64, layers=[0, 1, 2, 3])
N_KEYS = 10


def peak_while_writing(path, n_prompts):
    """Peak traced allocation while writing `n_prompts` prompts (inputs reused, so only the writer counts)."""
    rng = np.random.default_rng(0)
    q = {L: rng.standard_normal((8, 64)).astype(np.float32) for L in SHAPE["layers"]}
    k = {L: rng.standard_normal((N_KEYS, 4, 64)).astype(np.float32) for L in SHAPE["layers"]}
    keys = [{"position": i, "labels": {"order": str(i)}} for i in range(N_KEYS)]
    tokens = [f"tok{i}" for i in range(N_KEYS + 2)]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        with make_writer(path, **SHAPE) as w:
            for i in range(n_prompts):
                w.add_prompt(f"p{i}", tokens=tokens, query_position=N_KEYS + 1, query_labels={"order": "0"}, keys=keys, q=q, k=k)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - start


def test_peak_memory_does_not_grow_with_prompt_count(tmp_path):
    per_prompt_bytes = 4 * (8 * 64 + N_KEYS * 4 * 64) * 2  # bf16, 4 layers
    small = peak_while_writing(tmp_path / "small", 50)
    large = peak_while_writing(tmp_path / "large", 800)
    total_large = per_prompt_bytes * 800                   # 19.7 MB of tensors in the large capture
    # Holding the tensors would cost at least total_large; the ids set and counters grow by a
    # few dozen bytes a prompt, so allow 200 bytes per extra prompt.
    assert large < small + 200 * 750, (small, large)
    assert large < total_large / 10, (large, total_large)
