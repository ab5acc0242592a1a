"""Checkpoint files: atomic writes, refusals of foreign/corrupt/newer files, latest lookup."""

from __future__ import annotations

import json
import os

import pytest
import torch

from gancli import checkpoints
from gancli.errors import CheckpointError


def _save(path, step, value=1.0):
    checkpoints.save(path, {"G.w": torch.full((4,), value)}, {"step": step, "config": {"a": 1}})


def test_round_trip(tmp_path):
    p = tmp_path / "step-0000010.safetensors"
    _save(p, 10, 2.5)
    ck = checkpoints.load(p)
    assert ck.step == 10 and ck.meta["config"] == {"a": 1}
    assert ck.meta["gancli_format"] == checkpoints.FORMAT
    assert torch.equal(ck.section("G")["w"], torch.full((4,), 2.5))


def test_a_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    p = tmp_path / "step-0000010.safetensors"
    _save(p, 10, 1.0)

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(CheckpointError, match="No space left on device"):  # one line, exit 1
        _save(p, 10, 2.0)
    monkeypatch.undo()
    assert torch.equal(checkpoints.load(p).section("G")["w"], torch.full((4,), 1.0))
    assert [f.name for f in tmp_path.iterdir()] == [p.name], "temporary file left behind"


def test_truncated_file_is_refused_and_latest_falls_back(tmp_path, capsys):
    old, new = checkpoints.step_path(tmp_path, 10), checkpoints.step_path(tmp_path, 20)
    _save(old, 10)
    _save(new, 20)
    checkpoints.mark_latest(tmp_path, new)
    data = new.read_bytes()
    new.write_bytes(data[: len(data) // 2])  # as if the disk lost the tail
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        checkpoints.load(new)
    capsys.readouterr()
    assert checkpoints.latest(tmp_path) == old
    # and says so, once, naming both files: the user asked for the run and gets an older step
    err = capsys.readouterr().err
    assert err.count("warning: skipped unreadable checkpoint") == 1 and new.name in err
    assert err.rstrip().endswith(f"using {old.name}")


def test_garbage_foreign_and_newer_files(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        checkpoints.load(junk)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a gancli checkpoint"):
        checkpoints.load(foreign)
    newer = tmp_path / "newer.safetensors"
    save_file({"w": torch.zeros(2)}, str(newer),
              metadata={"gancli_format": str(checkpoints.FORMAT + 1), "step": "1"})
    with pytest.raises(CheckpointError, match="newer gancli"):
        checkpoints.load(newer)
    with pytest.raises(CheckpointError, match="not found"):
        checkpoints.load(tmp_path / "absent.safetensors")


def test_resolve_run_folder_and_prune(tmp_path):
    run = tmp_path / "run"
    ck = run / "checkpoints"
    ck.mkdir(parents=True)
    for step in (1, 2, 3, 4):
        path = checkpoints.step_path(ck, step)
        _save(path, step)
        checkpoints.mark_latest(ck, path)
        checkpoints.prune(ck, keep=2)
    assert sorted(p.name for p in ck.glob("*.safetensors")) == \
        ["step-0000003.safetensors", "step-0000004.safetensors"]
    assert checkpoints.resolve(run) == checkpoints.step_path(ck, 4)
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        checkpoints.resolve(tmp_path / "run" / "..")  # a folder with no checkpoints
    with pytest.raises(CheckpointError, match="no such run"):
        checkpoints.resolve(tmp_path / "nope")


def test_metadata_is_json(tmp_path):
    p = tmp_path / "c.safetensors"
    _save(p, 3)
    from safetensors import safe_open

    with safe_open(str(p), "pt") as f:
        raw = f.metadata()
    assert json.loads(raw["config"]) == {"a": 1}
