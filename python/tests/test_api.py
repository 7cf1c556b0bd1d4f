"""The package's Python conventions: picklable errors, no process-wide umask flip, keyword-only
add_prompt (positional form deprecated), py.typed, version from the package metadata."""
import os
import pickle
import stat
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

import qkcapture
from qkcapture import CaptureError
from conftest import make_writer, random_prompt


@pytest.mark.parametrize("error", [CaptureError("keys[2].position", "must be an integer in 0..10, got 11", "p3"),
                                   CaptureError("capture.json: version", "newer than 1")])
def test_errors_survive_pickling(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CaptureError and isinstance(copy, ValueError)
    assert (copy.field, copy.message, copy.prompt, str(copy)) == (error.field, error.message, error.prompt, str(error))


def test_an_error_from_a_worker_process_arrives_whole(tmp_path):
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        with pytest.raises(CaptureError) as info:
            pool.apply(qkcapture.read_capture, (str(tmp_path / "missing"),))
    assert info.value.field and info.value.message


def test_the_writer_never_changes_the_umask(tmp_path, rng, monkeypatch):
    def refuse(*_):
        raise AssertionError("os.umask was called")

    old = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", refuse)
        with make_writer(tmp_path / "cap") as w:
            work = w._work
            assert stat.S_IMODE(os.stat(work).st_mode) == 0o750
            assert os.path.basename(work).startswith(".cap.partial-")
            w.add_prompt(**random_prompt(rng, 0))
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "cap").st_mode) == 0o750


def test_add_prompt_is_keyword_only_after_the_id(tmp_path, rng):
    p = random_prompt(rng, 0)
    legacy = (p["tokens"], p["query_position"], p["query_labels"], p["keys"], p["q"], p["k"])
    with make_writer(tmp_path / "cap") as w:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            w.add_prompt(**p)  # the keyword form warns nothing
        with pytest.warns(DeprecationWarning, match="positional arguments is deprecated"):
            w.add_prompt("old", *legacy)
        with pytest.raises(TypeError, match="takes the prompt id, then keyword arguments"):
            w.add_prompt("two", p["tokens"], p["query_position"])
        with pytest.raises(TypeError, match="missing keyword argument"):
            w.add_prompt("three", tokens=p["tokens"], query_position=1, keys=p["keys"], q=p["q"])
    cap = qkcapture.read_capture(tmp_path / "cap")
    assert [x["id"] for x in cap.prompts] == ["p0", "old"]
    assert (cap.tensors.q(1)[0] == cap.tensors.q(1)[1]).all()


def test_typed_and_versioned():
    assert (Path(qkcapture.__file__).parent / "py.typed").is_file()
    try:
        installed = version("qkcapture")
    except PackageNotFoundError:
        pytest.skip("qkcapture is not installed (running from the source tree)")
    assert qkcapture.__version__ == installed
