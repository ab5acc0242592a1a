"""Kill harness: stop a CPU training run at random moments, resume it each time, lose nothing.

Stops, in turn (``--stops``): SIGKILL (no handler, no clean-up), SIGTERM and SIGHUP (the run must
finish its step, save, say so and exit 128 + signum), and a closed stdout (``--json`` piped into a
reader that goes away: the run must go on training, proven by a new checkpoint, and is then
SIGKILLed).

For each run: train once without interruption (the reference), then start the same run and
SIGKILL it after a random delay, again and again; after every kill

* every ``step-*.safetensors`` on disk must load completely and ``latest`` must name a complete
  checkpoint (nothing half-written, nothing unreadable),
* ``gancli train --resume RUN`` must restart from the newest complete checkpoint (or the one
  before it, when the kill fell between a checkpoint's rename and the update of ``latest``);

and when the run finally finishes its weights, optimiser state and RNG state must be
bit-identical to the reference. Checkpoints are written every step, so a kill often lands
inside a checkpoint write (counted when it leaves a ``.NAME.PID.tmp`` file behind). A quarter
of the kills strike at any moment of the process's life (imports and resume included); the
others wait until the run has written a new checkpoint, then strike at a random moment of the
next ten steps, so that most land in training steps and checkpoint writes rather than in
start-up, and a run survives as many kills as asked for.

    python benchmarks/kill_harness.py --runs 4 --kills 10            # about 10 minutes on 2 cores
    python benchmarks/kill_harness.py --runs 1 --kills 3 --steps 30  # what tests/ runs
    python benchmarks/kill_harness.py --stops kill                   # SIGKILLs only (as before)

Prints one JSON summary; exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from gancli import checkpoints

PRESETS = ("gan", "wgan-gp-toy")
# share of kills at a uniformly random moment of the process's life (start-up included); the
# rest wait until training has made progress, then strike at a random moment of what is left
START_UP_KILLS = 0.25
# tiny networks on the toy grid: a step takes milliseconds, so checkpoint writes (every step)
# are a large share of the wall time and many kills land inside one
TINY = ["--set", "data.size=512", "--set", "model.g_width=8", "--set", "model.d_width=8",
        "--set", "model.g_depth=2", "--set", "model.d_depth=2", "--set", "train.sample_n=4",
        "--batch-size", "8", "--ckpt-every", "1", "--sample-every", "0", "--log-every", "5",
        "--set", "train.keep=2"]


STOPS = ("kill", "term", "hup", "pipe")
SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "hup": signal.SIGHUP,
           "pipe": signal.SIGKILL}  # pipe: stdout closed first, then SIGKILL once it trained on


def command(preset: str, steps: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "gancli", "train", preset, "--quiet", *TINY, "--steps",
            str(steps), "--out", str(out)]


def resume_command(run: Path) -> list[str]:
    return [sys.executable, "-m", "gancli", "train", "--resume", str(run), "--quiet"]


def output(cmd: list[str], stop: str) -> list[str]:
    """``--json`` on stdout (instead of ``--quiet``) for a run whose reader will go away."""
    return [("--json" if a == "--quiet" else a) for a in cmd] if stop == "pipe" else cmd


def env() -> dict:
    # one thread: the same float reductions in every process, so runs can be bit-identical
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@dataclass
class RunReport:
    preset: str
    kills: int = 0  # stops of any kind
    sigkills: int = 0
    graceful_stops: int = 0  # SIGTERM / SIGHUP
    graceful_saved: int = 0  # ... that exited 128 + signum and saved the step they named
    graceful_failures: list[str] = field(default_factory=list)
    pipes_closed: int = 0
    pipes_trained_on: int = 0  # a new checkpoint was written after stdout was closed
    pipe_failures: list[str] = field(default_factory=list)
    kills_during_checkpoint_write: int = 0  # a .tmp file was left behind
    kills_before_first_checkpoint: int = 0  # nothing saved yet: started again from scratch
    kills_without_progress: int = 0  # no new checkpoint since the previous (re)start
    resumes: int = 0
    resumed_from_newest: int = 0
    resumed_from_newest_minus_one: int = 0  # kill between rename and `latest`
    checkpoints_checked: int = 0
    unreadable_checkpoints: list[str] = field(default_factory=list)
    bad_latest: int = 0
    failed_resumes: list[str] = field(default_factory=list)
    finished: bool = False
    bit_identical: bool = False
    different_tensors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def inspect(run: Path, report: RunReport) -> tuple[int | None, int | None]:
    """Check every checkpoint on disk; (newest complete step, step that a resume will load)."""
    ckpt_dir = run / "checkpoints"
    newest = None
    for step, path in checkpoints.list_steps(ckpt_dir):
        report.checkpoints_checked += 1
        try:
            ck = checkpoints.load(path)  # every tensor, not just the header
            assert ck.step == step and ck.tensors
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            report.unreadable_checkpoints.append(f"{path.name}: {e}")
            continue
        newest = step if newest is None else max(newest, step)
    pointer = ckpt_dir / checkpoints.LATEST
    if pointer.exists():
        target = ckpt_dir / pointer.read_text().strip()
        try:
            checkpoints.load(target, tensors=False)
        except Exception:  # noqa: BLE001
            report.bad_latest += 1
    if newest is None:
        return None, None
    return newest, checkpoints.load(checkpoints.resolve(run), tensors=False).step


def wait_for_progress(proc: subprocess.Popen, run: Path, after: int, limit: float = 120) -> None:
    """Return once ``latest`` names a step beyond ``after`` (or the process has ended)."""
    pointer = run / "checkpoints" / checkpoints.LATEST
    deadline = time.time() + limit
    while proc.poll() is None and time.time() < deadline:
        try:
            name = pointer.read_text().strip()
            if name and int(name.split("-")[1].split(".")[0]) > after:
                return
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.002)


def newest_step(run: Path) -> int:
    steps = checkpoints.list_steps(run / "checkpoints")
    return steps[0][0] if steps else -1


def final_tensors(run: Path) -> dict[str, torch.Tensor]:
    return checkpoints.load(checkpoints.resolve(run)).tensors


def one_run(preset: str, steps: int, kills: int, work: Path, rng: random.Random,
            ref_run: Path, ref_seconds: float, startup: float, stops=STOPS) -> RunReport:
    report = RunReport(preset)
    # the reference's own training time (its last logged row), start-up excluded
    rows = [json.loads(x) for x in (ref_run / "metrics.jsonl").read_text().splitlines()]
    train_seconds = max(r.get("elapsed_s", 0.0) for r in rows)
    t0 = time.perf_counter()
    out = work / "killed"
    run = out / f"{preset}-001"
    cmd = command(preset, steps, out)
    last_start_step = -1
    while True:
        stop = stops[report.kills % len(stops)] if report.kills < kills else "kill"
        proc = subprocess.Popen(output(cmd, stop), env=env(), stderr=subprocess.PIPE,
                                stdout=subprocess.PIPE if stop == "pipe" else subprocess.DEVNULL)
        if report.kills < kills:
            left = (steps - max(last_start_step, 0)) / steps * train_seconds
            try:
                if rng.random() < START_UP_KILLS:  # anywhere, start-up (imports, resume) included
                    proc.wait(timeout=rng.uniform(0.2, startup + left))
                else:  # once training runs (a new checkpoint appeared): mid-step or mid-write
                    wait_for_progress(proc, run, last_start_step)
                    proc.wait(timeout=rng.uniform(0, min(left, 10 * train_seconds / steps)))
            except subprocess.TimeoutExpired:
                if stop == "pipe":  # the reader goes away; training must go on
                    report.pipes_closed += 1
                    proc.stdout.close()
                    before = newest_step(run) if run.is_dir() else -1
                    wait_for_progress(proc, run, before)
                    if proc.poll() is None or proc.returncode == 0:
                        report.pipes_trained_on += newest_step(run) > before
                    else:
                        report.pipe_failures.append(
                            f"exit {proc.returncode}: {proc.stderr.read().decode()[-300:]}")
                    if proc.returncode == 0:  # it trained on to the end
                        report.kills += 1
                        report.finished = True
                        break
                if proc.poll() is None:
                    proc.send_signal(SIGNALS[stop])  # SIGKILL: no handler, no cleanup
                if stop in ("term", "hup"):
                    report.graceful_stops += 1
                    try:
                        _, err = proc.communicate(timeout=120)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        _, err = proc.communicate()
                    text = err.decode(errors="replace")
                    said = re.search(r"interrupted at step (\d+) by SIG\w+; checkpoint saved", text)
                    code = 128 + SIGNALS[stop]
                    if proc.returncode == 0:  # it had finished before the signal came
                        report.graceful_saved += 1
                    elif proc.returncode == code and said and newest_step(run) == int(said[1]):
                        report.graceful_saved += 1
                    elif proc.returncode == code and "second" in text:  # not sent here
                        report.graceful_failures.append(f"second signal? {text[-300:]}")
                    elif proc.returncode < 0 or proc.returncode == code:
                        # before the handler was installed (start-up): like a SIGKILL, nothing
                        # had been trained since the last start; counted, not a failure
                        # (or after the last step, the handler already removed)
                        newest = newest_step(run) if run.is_dir() else -1
                        report.graceful_saved += newest <= max(last_start_step, 0) or \
                            newest == steps
                    else:
                        report.graceful_failures.append(f"exit {proc.returncode}: {text[-300:]}")
                    if proc.returncode == 0:
                        report.kills += 1
                        report.finished = True
                        break
                else:
                    report.sigkills += 1
                proc.wait()
                report.kills += 1
                tmp = list((run / "checkpoints").glob(".*.tmp")) if run.is_dir() else []
                report.kills_during_checkpoint_write += bool(tmp)
                newest, will_load = inspect(run, report) if run.is_dir() else (None, None)
                if newest is None:  # killed before anything was saved: nothing to lose
                    report.kills_before_first_checkpoint += 1
                    shutil.rmtree(out, ignore_errors=True)
                    cmd, last_start_step = command(preset, steps, out), -1
                    continue
                report.kills_without_progress += will_load <= last_start_step
                report.resumed_from_newest += will_load == newest
                report.resumed_from_newest_minus_one += will_load == newest - 1
                report.resumes += 1
                last_start_step = will_load
                cmd = resume_command(run)
                continue
        _, err = proc.communicate()
        if proc.returncode != 0:
            report.failed_resumes.append(f"exit {proc.returncode}: {err.decode()[-300:]}")
            break
        report.finished = True
        break
    if report.finished:
        inspect(run, report)
        a, b = final_tensors(ref_run), final_tensors(run)
        report.different_tensors = sorted(set(a) ^ set(b)) + [k for k in a if k in b
                                                              and not torch.equal(a[k], b[k])]
        report.bit_identical = not report.different_tensors and \
            checkpoints.load(checkpoints.resolve(run), tensors=False).step == steps
    report.seconds = round(time.perf_counter() - t0, 1)
    return report


def reference(preset: str, steps: int, work: Path) -> tuple[Path, float, float]:
    """The uninterrupted run: (run folder, its wall time, the wall time of a 1-step run)."""
    times = []
    for n, name in ((1, "startup"), (steps, "reference")):
        out = work / f"{name}-{preset}"
        t0 = time.perf_counter()
        r = subprocess.run(command(preset, n, out), env=env(), capture_output=True)
        if r.returncode != 0:
            raise SystemExit(f"reference run failed: {r.stderr.decode()[-500:]}")
        times.append(time.perf_counter() - t0)
    return out / f"{preset}-001", times[1], times[0]


def harness(runs: int, kills: int, steps: int, seed: int, presets=PRESETS,
            work: Path | None = None, stops=STOPS) -> dict:
    rng = random.Random(seed)
    if work is None:
        with tempfile.TemporaryDirectory(prefix="gancli-kill-") as tmp:
            return harness(runs, kills, steps, seed, presets, Path(tmp), stops)
    refs = {p: reference(p, steps, work) for p in presets}
    reports = []
    for i in range(runs):
        preset = presets[i % len(presets)]
        run_work = work / f"run-{i}"
        reports.append(one_run(preset, steps, kills, run_work, rng, *refs[preset], stops=stops))
        shutil.rmtree(run_work, ignore_errors=True)
    total = {k: sum(getattr(r, k) for r in reports) for k in
             ("kills", "sigkills", "graceful_stops", "graceful_saved", "pipes_closed",
              "pipes_trained_on", "kills_during_checkpoint_write", "kills_before_first_checkpoint",
              "kills_without_progress", "resumes", "resumed_from_newest",
              "resumed_from_newest_minus_one", "checkpoints_checked", "bad_latest")}
    problems = sum(len(r.unreadable_checkpoints) + len(r.failed_resumes) + len(r.graceful_failures)
                   + len(r.pipe_failures) + (r.pipes_closed - r.pipes_trained_on)
                   + (r.graceful_stops - r.graceful_saved) for r in reports) \
        + total["bad_latest"] + sum(not r.bit_identical for r in reports)
    return {"command": " ".join(command("PRESET", steps, Path("OUT"))[1:]),
            "runs": runs, "steps": steps, "seed": seed,
            "reference_seconds": {p: round(s, 1) for p, (_, s, _) in refs.items()},
            "startup_seconds": {p: round(s, 1) for p, (_, _, s) in refs.items()},
            **total,
            "kills_survived": sum(r.kills for r in reports if r.finished and not r.bad_latest
                                  and not r.unreadable_checkpoints),
            "lost_runs": sum(not r.finished or not r.bit_identical for r in reports),
            "runs_finished": sum(r.finished for r in reports),
            "runs_bit_identical": sum(r.bit_identical for r in reports),
            "problems": problems, "runs_detail": [asdict(r) for r in reports]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4, help="killed runs (presets alternate)")
    ap.add_argument("--kills", type=int, default=10, help="SIGKILLs per run")
    ap.add_argument("--steps", type=int, default=150, help="generator steps per run")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--stops", default=",".join(STOPS),
                    help="kinds of stop, used in turn: kill (SIGKILL), term, hup, pipe")
    args = ap.parse_args()
    summary = harness(args.runs, args.kills, args.steps, args.seed, tuple(args.presets.split(",")),
                      stops=tuple(args.stops.split(",")))
    print(json.dumps(summary, indent=1))
    sys.exit(1 if summary["problems"] else 0)


if __name__ == "__main__":
    main()
