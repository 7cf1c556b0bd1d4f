"""A capture appears whole or not at all."""
import gc
import os

import pytest

import qkcapture
from qkcapture import CaptureError

from conftest import make_writer, random_prompt


def test_exception_inside_the_block_leaves_nothing(tmp_path, rng):
    with pytest.raises(RuntimeError, match="model crashed"):
        with make_writer(tmp_path / "cap") as w:
            for i in range(5):
                w.add_prompt(**random_prompt(rng, i))
            raise RuntimeError("model crashed")
    assert os.listdir(tmp_path) == []


def test_exception_leaves_an_existing_capture_untouched(tmp_path, rng):
    with make_writer(tmp_path / "cap") as w:
        w.add_prompt(**random_prompt(rng, 0))
    before = {name: (tmp_path / "cap" / name).read_bytes() for name in os.listdir(tmp_path / "cap")}
    with pytest.raises(KeyboardInterrupt):
        with make_writer(tmp_path / "cap", overwrite=True) as w:
            w.add_prompt(**random_prompt(rng, 1))
            raise KeyboardInterrupt
    after = {name: (tmp_path / "cap" / name).read_bytes() for name in os.listdir(tmp_path / "cap")}
    assert after == before
    assert os.listdir(tmp_path) == ["cap"]


def test_no_prompt_is_an_error_and_writes_nothing(tmp_path):
    with pytest.raises(CaptureError, match="no prompt was added") as info:
        with make_writer(tmp_path / "cap"):
            pass
    assert info.value.field == "prompts"
    assert os.listdir(tmp_path) == []


def test_work_in_progress_is_hidden_and_not_a_capture(tmp_path, rng):
    w = make_writer(tmp_path / "cap")
    w.add_prompt(**random_prompt(rng, 0))
    entries = os.listdir(tmp_path)
    assert len(entries) == 1 and entries[0].startswith(".cap.partial-")
    assert "capture.json" not in os.listdir(tmp_path / entries[0])
    with pytest.raises(CaptureError):
        qkcapture.read_capture(tmp_path / entries[0])
    w.abort()
    assert os.listdir(tmp_path) == []


def test_a_dropped_writer_cleans_up(tmp_path, rng):
    w = make_writer(tmp_path / "cap")
    w.add_prompt(**random_prompt(rng, 0))
    del w
    gc.collect()
    assert os.listdir(tmp_path) == []


def test_a_failed_write_breaks_the_writer(tmp_path, rng, monkeypatch):
    w = make_writer(tmp_path / "cap")
    w.add_prompt(**random_prompt(rng, 0))

    class Full:
        def write(self, data):
            raise OSError(28, "No space left on device")

        def close(self):
            pass

    w._k_spools[1] = Full()
    with pytest.raises(OSError, match="No space left"):
        w.add_prompt(**random_prompt(rng, 1))
    assert os.listdir(tmp_path) == []
    with pytest.raises(CaptureError, match="broken"):
        w.add_prompt(**random_prompt(rng, 2))
