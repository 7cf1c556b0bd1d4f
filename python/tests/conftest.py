"""Shared helpers: a small writer configuration and random prompts for it; and, when
QKCAT_NO_SKIPS is set (as `make test` does), every skip counts as a failure, so that a missing
optional dependency cannot quietly drop a test."""
import os

import numpy as np
import pytest

import qkcapture

SPEC = dict(
    model="test/tiny-gqa",
    checkpoint="step100",
    n_layers=4,
    n_heads=4,
    n_kv_heads=2,
    d_head=8,
    layers=[1, 3],
    features={"category": {"kind": "semantic", "description": "category of an item"},
              "order": {"kind": "binding"}},
    positional="post-rope",
)


def make_writer(path, **overrides):
    spec = dict(SPEC)
    spec.update(overrides)
    return qkcapture.CaptureWriter(path, **spec)


def random_prompt(rng, index, n_keys=3, spec=SPEC, scale=1.0):
    """A valid prompt for a writer built from `spec`: (args tuple of add_prompt, q dict, k dict)."""
    tokens = [f"t{index}_{i}" for i in range(n_keys + 4)]
    cats = ["fruit", "animal", "tool"]
    keys = [{"position": i, "labels": {"category": cats[(index + i) % 3], "order": str(i)}} for i in range(n_keys)]
    q = {L: (rng.standard_normal((spec["n_heads"], spec["d_head"])) * scale).astype(np.float32) for L in spec["layers"]}
    k = {L: (rng.standard_normal((n_keys, spec["n_kv_heads"], spec["d_head"])) * scale).astype(np.float32)
         for L in spec["layers"]}
    return dict(prompt_id=f"p{index}", tokens=tokens, query_position=len(tokens) - 1,
                query_labels={"category": cats[index % 3]}, keys=keys, q=q, k=k)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _skips_fail(report):
    if os.environ.get("QKCAT_NO_SKIPS") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but QKCAT_NO_SKIPS is set: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _skips_fail(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _skips_fail(outcome.get_result())
