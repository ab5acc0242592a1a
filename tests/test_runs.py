"""``gancli runs``: run folders with their progress, last losses, checkpoint and state."""

from __future__ import annotations

import fcntl
import json
import os

import pytest
import torch

from gancli import checkpoints
from gancli.runinfo import summarize
from gancli.runlog import append_jsonl

from conftest import TINY, no_traceback, tiny_overrides


def fake_run(root, name, steps_total, ckpt_step, rows, config=True):
    """A run folder as `gancli train` leaves it, without training."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    if config:
        (run / "config.yaml").write_text(f"name: dcgan\ntrain:\n  steps: {steps_total}\n")
    if ckpt_step is not None:
        path = checkpoints.step_path(run / "checkpoints", ckpt_step)
        checkpoints.save(path, {"G.w": torch.zeros(1)}, {"step": ckpt_step, "preset": "dcgan"})
        checkpoints.mark_latest(run / "checkpoints", path)
    for row in rows:
        append_jsonl(run / "metrics.jsonl", row)
    return run


def row(step, total=10, **extra):
    return {"step": step, "steps": total, "d_loss": 1.25, "g_loss": 0.75, "lr_g": 2e-4,
            "lr_d": 2e-4, "img_s": 100.0, "eta_s": 1.0, "elapsed_s": 2.0, **extra}


@pytest.fixture
def folder(tmp_path):
    fake_run(tmp_path, "a-finished", 10, 10, [row(5), row(10)])
    fake_run(tmp_path, "b-stopped", 10, 5, [row(5), row(7)])
    fake_run(tmp_path, "c-diverged", 10, 5, [row(5), {"step": 8, "event": "diverged",
                                                       "message": "training diverged"}])
    fake_run(tmp_path, "d-nan", 10, None, [row(5, d_loss=float("nan"))])
    # a rolled-back run that was then killed: stopped, not diverged
    fake_run(tmp_path, "e-rolled-back", 10, 5, [row(5), {"step": 5, "event": "rollback",
                                                          "lr_g": 1e-4, "lr_d": 1e-4}])
    (tmp_path / "not-a-run").mkdir()
    return tmp_path


def test_states_and_columns(folder):
    infos = {p.name: summarize(p) for p in sorted(folder.iterdir()) if p.name != "not-a-run"}
    assert {k: v["state"] for k, v in infos.items()} == {
        "a-finished": "finished", "b-stopped": "stopped", "c-diverged": "diverged",
        "d-nan": "diverged", "e-rolled-back": "stopped"}
    b = infos["b-stopped"]
    assert (b["preset"], b["step"], b["steps"], b["checkpoint_step"]) == ("dcgan", 7, 10, 5)
    assert b["losses"] == {"d_loss": 1.25, "g_loss": 0.75}
    assert b["checkpoint"].endswith("step-0000005.safetensors")
    assert infos["d-nan"]["checkpoint"] is None and infos["d-nan"]["step"] == 5


def test_a_held_lock_means_running(folder):
    run = folder / "b-stopped"
    (run / ".lock").write_text("12345\n")
    assert summarize(run)["state"] == "stopped"  # a lock file nobody holds: a killed trainer
    fd = os.open(run / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a training process holds
        assert summarize(run)["state"] == "running"
        assert summarize(folder / "a-finished")["state"] == "finished"
    finally:
        os.close(fd)
    assert summarize(run)["state"] == "stopped"


def test_json_and_plain_table(cli, folder):
    r = cli("runs", str(folder), "--json")
    assert r.code == 0, r.err
    got = json.loads(r.out)
    assert [x["name"] for x in got["runs"]] == ["a-finished", "b-stopped", "c-diverged", "d-nan",
                                                "e-rolled-back"]
    r = cli("runs", str(folder))
    lines = r.out.splitlines()
    assert lines[0].split()[:4] == ["run", "preset", "steps", "D"]
    assert lines[2].split()[:7] == ["b-stopped", "dcgan", "7/10", "1.2500", "0.7500", "step", "5"]
    assert lines[2].split()[7] == "stopped"


def test_damaged_files_do_not_stop_the_listing(cli, tmp_path):
    run = fake_run(tmp_path, "x-001", 10, None, [row(3)], config=False)
    (run / "config.yaml").write_bytes(b"\xff\xfe: [unclosed")
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b'{"step": 4, "d_lo')  # cut short by a kill
    (run / "checkpoints" / "step-0000009.safetensors").write_bytes(b"not a checkpoint")
    r = cli("runs", str(tmp_path), "--json")
    assert r.code == 0, r.err
    (info,) = json.loads(r.out)["runs"]
    assert (info["state"], info["step"], info["steps"], info["skipped_lines"]) == ("stopped", 3, 10, 1)


def test_missing_folder_is_one_line(cli, tmp_path):
    r = cli("runs", str(tmp_path / "nope"))
    assert r.code == 1 and "no such folder" in r.err and no_traceback(r.err)


def test_a_real_divergence_is_recorded(cli, tmp_path, monkeypatch):
    from gancli.registry import OBJECTIVES

    cls = OBJECTIVES.get("unconditional")
    real, calls = cls.g_step, {"n": 0}

    def g_step(self, batch_size, progress):  # G's loss is NaN at step 8 only
        calls["n"] += 1
        loss, stats = real(self, batch_size, progress)
        return (loss * float("nan") if calls["n"] == 8 else loss), stats

    monkeypatch.setattr(cls, "g_step", g_step)
    r = cli("train", "gan", *TINY, *tiny_overrides("gan"), "--steps", "12", "--ckpt-every", "5",
            "--out", str(tmp_path), "--quiet")
    assert r.code == 3, r.err
    run = tmp_path / "gan-001"
    info = summarize(run)
    assert (info["state"], info["checkpoint_step"]) == ("diverged", 5)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "diverged" and last["step"] == 8
    # resumed from the last good checkpoint, the run is no longer diverged
    r = cli("train", "--resume", str(run), "--quiet")
    assert r.code == 0, r.err
    assert summarize(run)["state"] == "finished"
