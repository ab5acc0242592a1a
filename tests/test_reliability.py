"""NaN/inf detection and roll-back, kills, broken pipes and the security rules of docs/reliability.md."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gancli import checkpoints, load_config
from gancli.errors import TrainingDiverged
from gancli.registry import OBJECTIVES
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.guard import FiniteGuard
from gancli.training.loop import train

from bad_inputs import TINY
from conftest import no_traceback

ROOT = Path(__file__).resolve().parent.parent
SETS = [s for s in TINY if s != "--set" and "=" in s] + ["train.sample_every=0", "train.log_every=50"]


def tiny_run(tmp_path, steps=10, extra=()):
    cfg = load_config("gan", SETS + [f"train.steps={steps}", "train.ckpt_every=1", "train.keep=20",
                                     *extra])
    run = create_run_dir(tmp_path, "gan")
    write_config(run, cfg)
    return cfg, run


def inject(monkeypatch, at: set[int], where: str = "loss"):
    """Make the G step's loss (or D's gradients) NaN on the given calls (1-based) of g_step."""
    cls = OBJECTIVES.get("unconditional")
    real = cls.g_step
    calls = {"n": 0}

    def g_step(self, batch_size, progress):
        calls["n"] += 1
        loss, stats = real(self, batch_size, progress)
        if calls["n"] in at:
            if where == "loss":
                loss = loss * float("nan")
            else:  # finite loss, NaN gradient in one of G's weights
                p = next(self.G.parameters())
                p.register_hook(lambda g: torch.full_like(g, float("nan")))
                loss = loss + 0 * p.sum()
        return loss, stats

    monkeypatch.setattr(cls, "g_step", g_step)
    return calls


def all_finite(path: Path) -> bool:
    ck = checkpoints.load(path)
    return all(bool(torch.isfinite(t).all()) for t in ck.tensors.values() if t.is_floating_point())


def test_guard_records_the_first_bad_step_without_raising_early():
    g = FiniteGuard(torch.device("cpu"))
    w = torch.nn.Parameter(torch.ones(3))
    w.grad = torch.ones(3)
    g.watch(1, "D", torch.tensor(1.0), [w])
    g.check(load_config("gan"), None)  # all finite: no error
    w.grad = torch.tensor([1.0, float("inf"), 0.0])
    g.watch(4, "G", torch.tensor(2.0), [w])
    g.watch(5, "D", torch.tensor(float("nan")), [w])  # later steps do not move the record
    with pytest.raises(TrainingDiverged) as e:
        g.check(load_config("gan"), Path("ck"))
    assert e.value.step == 4 and "G gradients at step 4" in e.value.message
    assert "learning rate" in e.value.message and "last good checkpoint is ck" in e.value.message


@pytest.mark.parametrize("where", ["loss", "grad"])
def test_injected_nan_stops_at_its_step_and_no_checkpoint_holds_it(tmp_path, monkeypatch, where):
    inject(monkeypatch, {7}, where)
    cfg, run = tiny_run(tmp_path)
    with pytest.raises(TrainingDiverged) as e:
        train(cfg, run, torch.device("cpu"), Reporter())
    assert e.value.step == 7 and e.value.exit_code == 3
    assert ("G loss" if where == "loss" else "G gradients") in e.value.message
    steps = [s for s, _ in checkpoints.list_steps(run / "checkpoints")]
    assert steps == [6, 5, 4, 3, 2, 1]  # nothing written at or after the bad step
    assert checkpoints.resolve(run).name == "step-0000006.safetensors"
    assert all(all_finite(p) for _, p in checkpoints.list_steps(run / "checkpoints"))


def test_diverging_config_exits_3_with_one_line(cli, tmp_path):
    r = cli("train", "gan", *TINY, "--set", "optim.lr_g=1e30", "--set", "optim.lr_d=1e30",
            "--steps", "20", "--ckpt-every", "5", "--out", str(tmp_path), "--quiet")
    assert r.code == 3, r.err
    first = r.err.splitlines()[0]
    assert re.search(r"NaN/inf in the .* at step \d+", first) and "learning rate" in first
    assert no_traceback(r.err)
    for _, p in checkpoints.list_steps(tmp_path / "gan-001" / "checkpoints"):
        assert all_finite(p)


def test_rollback_retries_from_the_last_good_checkpoint_with_half_the_lr(cli, tmp_path,
                                                                          monkeypatch):
    inject(monkeypatch, {8})  # once: the retry of step 8 is fine
    r = cli("train", "gan", *TINY, "--steps", "12", "--ckpt-every", "5", "--on-nan", "rollback",
            "--out", str(tmp_path), "--quiet")
    assert r.code == 0, r.err
    run = tmp_path / "gan-001"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    events = [x for x in rows if x.get("event") == "rollback"]
    lr = load_config("gan").optim.lr_g
    assert events == [{"step": 5, "event": "rollback", "diverged_at": 8, "attempt": 1,
                       "from_checkpoint": str(run / "checkpoints" / "step-0000005.safetensors"),
                       "lr_g": lr / 2, "lr_d": lr / 2}]
    final = checkpoints.load(checkpoints.resolve(run), tensors=False)
    assert final.step == 12 and final.meta["config"]["optim"]["lr_g"] == lr / 2
    assert [x["step"] for x in rows if "g_loss" in x] == [12]  # each step logged once


def test_rollback_gives_up_after_its_retries(cli, tmp_path):
    r = cli("train", "gan", *TINY, "--set", "optim.lr_g=1e30", "--set", "optim.lr_d=1e30",
            "--steps", "10", "--on-nan", "rollback", "--set", "train.nan_retries=2",
            "--out", str(tmp_path), "--quiet")
    assert r.code == 3 and "gave up after 2 roll-back(s)" in r.err, r.err
    rows = [json.loads(x) for x in (tmp_path / "gan-001" / "metrics.jsonl").read_text().splitlines()]
    assert [x["lr_g"] for x in rows if x.get("event") == "rollback"] == [5e29, 2.5e29]
    # the last row records the divergence: `gancli runs` shows the run as diverged
    assert rows[-1]["event"] == "diverged" and "gave up after 2" in rows[-1]["message"]


def test_kill_harness_small(tmp_path):
    """The harness of benchmarks/kill_harness.py, a SIGKILL, a SIGTERM, a SIGHUP and a closed
    stdout: each signal saves first, the run trains on without its reader, every resume is
    exact, nothing lost."""
    spec = importlib.util.spec_from_file_location("kill_harness", ROOT / "benchmarks" / "kill_harness.py")
    harness = importlib.util.module_from_spec(spec)
    sys.modules["kill_harness"] = harness  # its dataclasses look their module up
    spec.loader.exec_module(harness)
    s = harness.harness(runs=1, kills=4, steps=40, seed=0, presets=("gan",), work=tmp_path)
    assert s["kills"] == 4 and s["problems"] == 0 and s["lost_runs"] == 0, s
    assert s["kills_survived"] == 4 and s["runs_bit_identical"] == 1, s
    assert s["graceful_stops"] == s["graceful_saved"] == 2, s
    assert s["pipes_closed"] == s["pipes_trained_on"] == 1, s
    assert s["checkpoints_checked"] >= 3


def test_broken_pipe_is_quiet(tmp_path):
    """`gancli zoo --json | head -c1`: the reader goes away; no traceback, exit 0 or 1."""
    for args in (["zoo", "--json"], ["train", "gan", "--dry-run"]):
        p = subprocess.Popen([sys.executable, "-m", "gancli", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        p.stdout.read(1)
        p.stdout.close()  # like head -c1 exiting
        err = p.stderr.read().decode()
        p.wait(timeout=60)
        assert p.returncode in (0, 1) and no_traceback(err) and "Exception ignored" not in err, err


# --------------------------------------------------------------------------- security

UNSAFE = [
    (r"\bimport pickle\b|\bpickle\.load|\bcPickle\b|\bdill\b|\bjoblib\.load", "pickle"),
    (r"\byaml\.(load|unsafe_load|full_load)\(|yaml\.(Unsafe|Full)?Loader\b", "unsafe YAML"),
    (r"allow_pickle\s*=\s*True", "numpy pickle"),
    (r"(?<![.\w])(eval|exec)\(", "eval/exec"),
]


def test_no_unsafe_loading_anywhere_in_the_package():
    found = []
    for py in (ROOT / "gancli").rglob("*.py"):
        text = py.read_text(encoding="utf-8")
        code = "\n".join(line.split("#")[0] for line in text.splitlines())  # comments aside
        for pattern, what in UNSAFE:
            found += [f"{py.name}: {what}" for _ in re.finditer(pattern, code)]
        for m in re.finditer(r"torch\.load\(", code):
            if "weights_only=True" not in code[m.end():m.end() + 200].split("torch.load")[0]:
                found.append(f"{py.name}: torch.load without weights_only=True")
    assert not found, found


def test_latest_pointer_cannot_lead_outside_the_folder(tmp_path):
    cfg, run = tiny_run(tmp_path, steps=2)
    train(cfg, run, torch.device("cpu"), Reporter())
    cfg3, other = tiny_run(tmp_path / "other", steps=3)
    train(cfg3, other, torch.device("cpu"), Reporter())
    pointer = run / "checkpoints" / "latest"
    pointer.write_text(str(checkpoints.resolve(other)))  # an absolute path into another run
    assert checkpoints.resolve(run).parent == run / "checkpoints"
    pointer.write_text("../../other/gan-001/checkpoints/step-0000003.safetensors")
    assert checkpoints.resolve(run).parent == run / "checkpoints"
