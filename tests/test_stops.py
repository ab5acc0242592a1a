"""Issue 15, kinds 1 and 2: every way a run can stop saves first; a run folder has one owner.

Signals are real (``os.kill`` to this process, or to a child); disk and pipe failures are
simulated by patching the function that writes (the tests run as root, where a read-only
folder is still writable).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gancli import checkpoints, load_config
from gancli.errors import GancliError, Interrupted, RunInUse
from gancli.reporting import JsonlReporter, Reporter
from gancli.runs import create_run_dir, run_lock, write_config
from gancli.training import loop
from gancli.training.loop import train

from conftest import no_traceback

ROOT = Path(__file__).resolve().parent.parent
TOY = ["data.size=512", "model.g_width=8", "model.d_width=8", "model.g_depth=2", "model.d_depth=2",
       "train.sample_n=4", "train.batch_size=8", "train.sample_every=0", "train.ckpt_every=0"]
TOY_FLAGS = [x for s in TOY for x in ("--set", s)]


def tiny(tmp_path, steps=6, extra=(), preset="gan", name="gan"):
    cfg = load_config(preset, TOY + [f"train.steps={steps}", "train.log_every=1", *extra])
    run = create_run_dir(tmp_path, name)
    write_config(run, cfg)
    return cfg, run


class SignalAt(Reporter):
    """Sends ``signum`` to this process when step ``n`` is logged (and ``again`` once the
    checkpoint that stop asked for is being written, if given)."""

    def __init__(self, n: int, signum: int):
        self.n, self.signum = n, signum
        self.events: list[tuple[str, dict]] = []

    def step(self, row):
        if row["step"] == self.n:
            os.kill(os.getpid(), self.signum)

    def event(self, kind, **fields):
        self.events.append((kind, fields))


# --------------------------------------------------------------------------- kind 1: signals

@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGHUP", 129), ("SIGUSR1", 138),
                                        ("SIGINT", 130)])
def test_each_stop_signal_finishes_the_step_saves_and_names_itself(tmp_path, name, code):
    signum = getattr(signal, name)
    cfg, run = tiny(tmp_path, steps=8)
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as err:
        train(cfg, run, torch.device("cpu"), SignalAt(3, signum))
    assert err.value.exit_code == code
    assert f"interrupted at step 3 by {name}; checkpoint saved" in err.value.message
    assert "--resume" in err.value.hint
    assert checkpoints.load(checkpoints.resolve(run)).step == 3
    assert signal.getsignal(signum) == before  # the handler is put back


def test_a_second_signal_during_the_save_exits_at_once_without_a_traceback(tmp_path, cli,
                                                                           monkeypatch):
    """SIGTERM, then SIGINT while the stop's checkpoint is written: one line, exit 130, and the
    checkpoints on disk stay complete (the write is atomic)."""
    real_save = checkpoints.save
    saves = {"n": 0}

    def save(path, tensors, meta):
        saves["n"] += 1
        if saves["n"] == 2:  # the checkpoint the SIGTERM asked for
            os.kill(os.getpid(), signal.SIGINT)  # the handler raises here, before the write
        return real_save(path, tensors, meta)

    class Term(Reporter):
        def event(self, kind, **fields):
            if kind == "checkpoint" and fields["step"] == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(checkpoints, "save", save)
    cfg, run = tiny(tmp_path, steps=20, extra=["train.ckpt_every=2"])
    with pytest.raises(Interrupted) as err:
        train(cfg, run, torch.device("cpu"), Term())
    assert err.value.exit_code == 130
    assert "second SIGINT (after SIGTERM)" in err.value.message
    assert [s for s, _ in checkpoints.list_steps(run / "checkpoints")] == [2]
    assert checkpoints.load(checkpoints.resolve(run)).step == 2


@pytest.mark.slow  # a real process (start-up dominates); the kill harness covers it too
def test_sigterm_to_the_cli_saves_and_exits_143(tmp_path):
    args = [sys.executable, "-m", "gancli", "train", "gan", *TOY_FLAGS, "--steps", "100000",
            "--set", "train.log_every=5", "--ckpt-every", "5", "--out", str(tmp_path)]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    latest = tmp_path / "gan-001" / "checkpoints" / "latest"
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "by SIGTERM; checkpoint saved" in err and "--resume" in err and no_traceback(err), err
    stopped = checkpoints.load(checkpoints.resolve(tmp_path / "gan-001"), tensors=False).step
    assert stopped >= 5 and f"interrupted at step {stopped} by SIGTERM" in err, err


# --------------------------------------------------------------------------- kind 1: output

class DeadPipe:
    """A stdout whose reader went away after ``n`` lines (``... | head -n``)."""

    def __init__(self, n: int):
        self.n, self.lines = n, []

    def write(self, text):
        if len(self.lines) >= self.n:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        self.lines.append(text)

    def flush(self):
        pass


def test_a_closed_stdout_stops_output_not_training(tmp_path, capsys):
    cfg, run = tiny(tmp_path, steps=6)
    out = DeadPipe(1)
    result = train(cfg, run, torch.device("cpu"), JsonlReporter(out))
    assert result.step == 6 and checkpoints.load(checkpoints.resolve(run)).step == 6
    assert len(out.lines) == 1 and json.loads(out.lines[0])["event"] == "start"
    err = capsys.readouterr().err
    assert err.count("output stopped (Broken pipe); training goes on") == 1, err
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "g_loss" in r] == [1, 2, 3, 4, 5, 6]  # a complete log


@pytest.mark.slow  # a real process (start-up dominates); the kill harness covers it too
def test_json_piped_into_head_trains_to_the_end(tmp_path):
    """`gancli train --json | head -1`, for real: exit 0, the final checkpoint, one warning."""
    args = [sys.executable, "-m", "gancli", "train", "gan", *TOY_FLAGS, "--steps", "12",
            "--set", "train.log_every=1", "--json", "--out", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # like head -1 exiting
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert json.loads(first)["event"] == "start"
    assert proc.returncode == 0, err
    assert "output stopped" in err and no_traceback(err) and "Exception ignored" not in err, err
    assert checkpoints.load(checkpoints.resolve(tmp_path / "gan-001"), tensors=False).step == 12


# --------------------------------------------------------------------------- kind 1: disk errors

def enospc(path="x"):
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def test_a_failed_preview_is_one_warning_and_training_goes_on(tmp_path, monkeypatch):
    def write(self, folder, step):
        raise enospc(folder / f"step-{step:07d}.png")

    monkeypatch.setattr(loop.Preview, "write", write)
    cfg, run = tiny(tmp_path, steps=5, extra=["train.sample_every=1"])
    rep = SignalAt(-1, 0)
    result = train(cfg, run, torch.device("cpu"), rep)
    assert result.step == 5 and checkpoints.load(checkpoints.resolve(run)).step == 5
    warnings = [f["text"] for k, f in rep.events if k == "warning"]
    assert len(warnings) == 1 and "sample grids" in warnings[0] and "step-0000001.png" in warnings[0]
    assert not [f for k, f in rep.events if k == "sample"]


def test_a_failed_metrics_row_is_one_warning_and_training_goes_on(tmp_path, monkeypatch):
    real = loop.append_jsonl
    calls = {"n": 0}

    def append(path, row):
        calls["n"] += 1
        if calls["n"] in (2, 3):  # the disk was full for a moment
            raise enospc(path)
        return real(path, row)

    monkeypatch.setattr(loop, "append_jsonl", append)
    cfg, run = tiny(tmp_path, steps=5)
    rep = SignalAt(-1, 0)
    train(cfg, run, torch.device("cpu"), rep)
    assert checkpoints.load(checkpoints.resolve(run)).step == 5
    warnings = [f["text"] for k, f in rep.events if k == "warning"]
    assert len(warnings) == 1 and "metrics rows" in warnings[0] and "metrics.jsonl" in warnings[0]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "g_loss" in r] == [1, 4, 5]


def test_another_oserror_between_steps_saves_then_names_the_file(tmp_path, monkeypatch):
    """An OSError at a step boundary (here: deleting an old checkpoint fails once): a checkpoint
    of that step is saved, then one line names the file and gives the --resume hint."""
    real = checkpoints.prune
    calls = {"n": 0}

    def prune(folder, keep):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.EIO, "Input/output error", str(folder / "step-0000001.safetensors"))
        return real(folder, keep)

    monkeypatch.setattr(checkpoints, "prune", prune)
    cfg, run = tiny(tmp_path, steps=10, extra=["train.ckpt_every=1"])
    with pytest.raises(GancliError) as err:
        train(cfg, run, torch.device("cpu"), Reporter())
    msg = err.value.message
    assert msg.startswith("Input/output error (") and "step-0000001.safetensors" in msg, msg
    assert "at step 3; checkpoint saved: " in msg and str(run) in err.value.hint
    assert "--resume" in err.value.hint
    assert checkpoints.load(checkpoints.resolve(run)).step == 3


def test_an_oserror_inside_a_step_keeps_the_last_checkpoint_and_saves_nothing_partial(
        tmp_path, monkeypatch):
    from gancli.data.batches import Batches

    real = Batches.next
    calls = {"n": 0}

    def next_(self):
        calls["n"] += 1
        if calls["n"] == 5:  # the 5th batch read fails: step 5 is half done
            raise OSError(errno.EIO, "Input/output error", "/data/store.u8")
        return real(self)

    monkeypatch.setattr(Batches, "next", next_)
    cfg, run = tiny(tmp_path, steps=10, extra=["train.ckpt_every=2"])
    with pytest.raises(GancliError) as err:
        train(cfg, run, torch.device("cpu"), Reporter())
    assert "Input/output error (/data/store.u8) at step 4; the last checkpoint is" in err.value.message
    assert "step-0000004" in err.value.message and "--resume" in err.value.hint
    assert [s for s, _ in checkpoints.list_steps(run / "checkpoints")] == [4, 2]


# --------------------------------------------------------------------------- kind 2: one owner

HOLD = ("import sys, time\nfrom gancli.runs import run_lock\nwith run_lock(sys.argv[1]):\n"
        "    print('held', flush=True)\n    time.sleep(120)\n")


def hold(run: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_cannot_resume_a_run_in_use_and_a_killed_holder_frees_it(tmp_path, cli):
    cfg, run = tiny(tmp_path, steps=2)
    train(cfg, run, torch.device("cpu"), Reporter())
    holder = hold(run)
    try:
        r = cli("train", "--resume", str(run), "--steps", "3", "--quiet")
        assert r.code == 1, r.err
        assert f"run folder {run} is in use by process {holder.pid}" in r.err and no_traceback(r.err)
        assert checkpoints.load(checkpoints.resolve(run)).step == 2  # nothing was touched
        # the same through the checkpoint file inside the run
        r = cli("train", "--resume", str(checkpoints.resolve(run)), "--steps", "3", "--quiet")
        assert r.code == 1 and "in use by process" in r.err, r.err
    finally:
        holder.kill()  # SIGKILL: no clean-up; the kernel drops the lock
        holder.wait()
    assert (run / ".lock").exists()  # a stale PID is left behind, and ignored
    r = cli("train", "--resume", str(run), "--steps", "3", "--quiet")
    assert r.code == 0, r.err
    assert checkpoints.load(checkpoints.resolve(run)).step == 3
    assert not (run / ".lock").exists()


def test_a_fresh_run_holds_its_folder_while_it_trains(tmp_path, cli, monkeypatch):
    from gancli.training import guard

    seen = {}
    real = guard.run_with_rollback

    def run_with_rollback(once, cfg, ckpt, on_event):
        run = next(tmp_path.glob("gan-*"))
        try:
            with run_lock(run):
                seen["free"] = True
        except RunInUse as e:
            seen["held"] = e.message
        return real(once, cfg, ckpt, on_event)

    monkeypatch.setattr(guard, "run_with_rollback", run_with_rollback)
    r = cli("train", "gan", *TOY_FLAGS, "--steps", "2", "--out", str(tmp_path), "--quiet")
    assert r.code == 0, r.err
    assert "free" not in seen and f"in use by process {os.getpid()}" in seen["held"]


def test_a_checkpoint_of_another_run_is_not_resumed_into_this_one(tmp_path, cli):
    cfg, run = tiny(tmp_path, steps=2)
    train(cfg, run, torch.device("cpu"), Reporter())
    cfg_w, other = tiny(tmp_path, steps=2, extra=["model.g_width=16"], name="wide")
    train(cfg_w, other, torch.device("cpu"), Reporter())
    # the other run's step-2 checkpoint, copied over this run's (same name, same step inside)
    shutil.copy(checkpoints.resolve(other), run / "checkpoints" / "step-0000002.safetensors")
    r = cli("train", "--resume", str(run), "--steps", "3", "--quiet")
    assert r.code == 1, r.err
    assert "does not belong to run" in r.err and "model.g_width is 16, the run's is 8" in r.err, r.err


def test_a_renamed_checkpoint_is_refused(tmp_path, cli):
    cfg, run = tiny(tmp_path, steps=2)
    train(cfg, run, torch.device("cpu"), Reporter())
    ck = run / "checkpoints"
    (ck / "step-0000002.safetensors").rename(ck / "step-0000007.safetensors")
    (ck / "latest").write_text("step-0000007.safetensors\n")
    r = cli("train", "--resume", str(run), "--steps", "9", "--quiet")
    assert r.code == 1 and "is named step 7 but holds step 2" in r.err, r.err



def test_an_error_after_the_terminal_closed_is_not_a_second_error(monkeypatch):
    """SIGHUP: the run saved and raises Interrupted, but stderr (the closed terminal) gives EIO;
    printing the error must not raise again (that was a traceback, or a wrong exit code)."""
    from gancli.cli import report_error

    class DeadTerminal:
        def write(self, text):
            raise OSError(errno.EIO, "Input/output error")

        def flush(self):
            raise OSError(errno.EIO, "Input/output error")

        def isatty(self):
            return False

    monkeypatch.setattr(sys, "stderr", DeadTerminal())
    report_error(GancliError("interrupted at step 3; checkpoint saved: x", hint="h"))  # quietly
