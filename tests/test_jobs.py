"""Issue 21, job scripts: time-based checkpoints, `--name NAME --resume auto` (the identical
command starts a run or continues it), a finished run exits 0."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch

from gancli import checkpoints, load_config
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training import loop

from conftest import no_traceback

ROOT = Path(__file__).resolve().parent.parent
TOY = ["data.size=512", "model.g_width=8", "model.d_width=8", "model.g_depth=2", "model.d_depth=2",
       "train.sample_n=4", "train.batch_size=8", "train.sample_every=0", "train.log_every=5"]
FLAGS = [x for s in TOY for x in ("--set", s)]


def env() -> dict:  # one thread: the same float reductions in every process (bit-identical)
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def job(out: Path, steps: int, name: str = "job", every: int = 5) -> list[str]:
    """A job script's one command: the same line on every (re)submission."""
    return [sys.executable, "-m", "gancli", "train", "gan", *FLAGS, "--steps", str(steps),
            "--ckpt-every", str(every), "--out", str(out), "--name", name, "--resume", "auto",
            "--quiet"]


def wait_for_checkpoint(proc, run: Path, after: int = 0, limit: float = 120) -> None:
    deadline = time.time() + limit
    while proc.poll() is None and time.time() < deadline:
        steps = checkpoints.list_steps(run / "checkpoints")
        if steps and steps[0][0] > after:
            return
        time.sleep(0.01)


def tensors(run: Path) -> dict:
    return checkpoints.load(checkpoints.resolve(run)).tensors


def test_ckpt_minutes_saves_on_the_clock_as_well(tmp_path, monkeypatch):
    clock = {"t": 0.0}

    def monotonic():  # every reading is 30 s after the previous one
        clock["t"] += 30.0
        return clock["t"]

    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=time.perf_counter,
                                                             monotonic=monotonic))
    cfg = load_config("gan", TOY + ["train.steps=7", "train.ckpt_every=0", "train.keep=20",
                                    "train.ckpt_minutes=1"])
    run = create_run_dir(tmp_path, "gan")
    write_config(run, cfg)
    loop.train(cfg, run, torch.device("cpu"), Reporter())
    # start at 30 s; one reading per step; a save every 60 s of readings, then the last step
    assert [s for s, _ in checkpoints.list_steps(run / "checkpoints")] == [7, 6, 4, 2]


@pytest.mark.slow  # three processes, about a minute on 2 cores
def test_sigterm_then_the_identical_command_ends_bit_identical_in_the_same_folder(tmp_path):
    steps = 40
    ref = subprocess.run(job(tmp_path / "ref", steps), env=env(), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "jobs"
    run = out / "job"
    proc = subprocess.Popen(job(out, steps), env=env(), stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(proc, run)
    time.sleep(random.Random(0).uniform(0, 0.5))  # a random step after the first checkpoint
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "by SIGTERM; checkpoint saved" in err, err
    stopped = checkpoints.load(checkpoints.resolve(run), tensors=False).step
    assert 0 < stopped < steps
    again = subprocess.run(job(out, steps), env=env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert [p.name for p in out.iterdir()] == ["job"]
    a, b = tensors(tmp_path / "ref" / "job"), tensors(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # once more: finished, nothing to do
    done = subprocess.run(job(out, steps), env=env(), capture_output=True, text=True)
    assert done.returncode == 0 and f"run {run} already finished: step {steps}" in done.stderr


@pytest.mark.slow
def test_a_job_resubmitted_after_three_sigkills_finishes_in_one_folder(tmp_path):
    steps, out = 60, tmp_path / "jobs"
    run = out / "job"
    for _ in range(3):
        proc = subprocess.Popen(job(out, steps, every=2), env=env(), stderr=subprocess.DEVNULL)
        before = checkpoints.list_steps(run / "checkpoints")
        wait_for_checkpoint(proc, run, before[0][0] if before else 0)
        proc.kill()
        proc.wait()
    final = subprocess.run(job(out, steps, every=2), env=env(), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert [p.name for p in out.iterdir()] == ["job"]
    assert checkpoints.load(checkpoints.resolve(run), tensors=False).step == steps


def test_resume_auto_starts_a_new_run_then_refuses_another_command_in_its_folder(tmp_path, cli):
    args = ["train", "gan", *FLAGS, "--steps", "2", "--out", str(tmp_path), "--name", "j1"]
    r = cli(*args, "--resume", "auto", "--quiet")
    assert r.code == 0, r.err
    assert [p.name for p in tmp_path.iterdir()] == ["j1"]
    r = cli(*args, "--resume", "auto", "--quiet", "--set", "model.g_width=16")
    assert r.code == 2 and "holds another run: model.g_width is 8 there, 16 in this command" in r.err
    r = cli(*args, "--quiet")  # --name without --resume auto: never trains over a run
    assert r.code == 2 and "already holds a run" in r.err and no_traceback(r.err), r.err
    r = cli(*args[:-4], "--steps", "3", "--out", str(tmp_path), "--name", "j1", "--resume", "auto",
            "--quiet")  # a longer run: continues
    assert r.code == 0, r.err
    assert checkpoints.load(checkpoints.resolve(tmp_path / "j1"), tensors=False).step == 3
    r = cli("train", "--resume", "auto", "--name", "j1")
    assert r.code == 2 and "needs the preset and --name" in r.err
    r = cli("train", "--resume", str(tmp_path / "j1"), "--name", "j2")
    assert r.code == 2 and "drop --name" in r.err


def test_resuming_a_finished_checkpoint_does_nothing_and_makes_no_folder(tmp_path, cli):
    r = cli("train", "gan", *FLAGS, "--steps", "2", "--out", str(tmp_path / "a"), "--quiet")
    assert r.code == 0, r.err
    (run,) = (tmp_path / "a").iterdir()
    ckpt = checkpoints.resolve(run)
    before = sorted(p.name for p in run.rglob("*"))
    r = cli("train", "--resume", str(run), "--quiet")  # its own folder: nothing rewritten
    assert r.code == 0 and "at step 2 of 2: nothing to do" in r.err, r.err
    assert sorted(p.name for p in run.rglob("*")) == before
    r = cli("train", "--resume", str(ckpt), "--out", str(tmp_path / "b"), "--quiet")  # a loose file
    assert r.code == 0 and "nothing to do" in r.err and not (tmp_path / "b").exists(), r.err


def test_a_named_run_refused_before_its_first_step_leaves_no_folder(tmp_path, cli):
    """--name makes its folder before the data is read; a run refused there (here: data the
    family cannot take) must not leave an empty run that `gancli runs` lists as stopped."""
    r = cli("train", "pix2pix", "--steps", "2", "--set", "data.resolution=36", "--out",
            str(tmp_path), "--name", "bad", "--quiet")
    assert r.code == 2 and "divisible by 8" in r.err and no_traceback(r.err), r.err
    assert not (tmp_path / "bad").exists()
