"""A killed or interrupted run, resumed, ends bit-identical to one that never stopped (CPU)."""

from __future__ import annotations

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
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train

from conftest import tiny_overrides

CASES = {
    # WGAN-GP: n_critic 5, a random interpolate per sample, Adam with beta1 = 0
    "wgan-gp-toy": ["train.n_critic=5"],
    # DCGAN (the paper's plain objective: the preset's clusters refuse a pool) with every
    # stateful option: BN statistics, EMA, image pool, flips, annealed instance noise, label
    # smoothing and a decaying learning rate (the clusters: test_self_conditional.py)
    "dcgan": ["objective=unconditional", "model.z_clusters=0", "train.ema=0.9",
              "train.pool_size=6", "data.flip=true", "loss.instance_noise=0.1",
              "loss.label_smoothing=0.1", "optim.decay_start=10"],
    # SAGAN: spectral-norm power-iteration vectors in G and D, self-attention, TTUR; plus
    # the random toolbox draws: DiffAugment, flipped labels (so a BCE loss), minibatch stddev
    "sagan": ["train.augment=translation,cutout,color", "loss.name=nonsaturating",
              "loss.label_flip=0.2", "model.mbstd=2", "train.ema=0.9"],
    # InfoGAN: codes drawn from the run's generator in both steps
    "infogan": [],
    # ACGAN with TAC-GAN's twin classifier: D's class head is twice as wide
    "acgan": ["model.aux_classifier=tac", "acgan.cls_fake=0"],
    # ADC-GAN's 2K-way class head, plus MSGAN's paired labels in G's step
    "adcgan": ["loss.mode_seeking=1"],
    # ProGAN at 16 px, 6 steps per phase: the stop at step 9 lands mid-fade-in of 8x8 (alpha
    # 0.5); the resumed run crosses two optimiser resets (steps 12, 18) and a second fade-in
    "progan": ["data.resolution=16", "progressive.phase_images=48"],
    # pix2pix: G's dropout masks drawn from the run's generator, paired random crops and
    # flips, a decaying learning rate
    "pix2pix": ["data.flip=true", "data.crop_scale=1.25", "data.crop=random", "optim.decay_start=10"],
}


def tiny_cfg(preset: str, steps: int, extra: list[str]):
    sets = [s for s in tiny_overrides(preset) if s != "--set"] + extra + [
        f"train.steps={steps}", "train.batch_size=8", "train.log_every=1", "train.sample_every=0",
        "train.ckpt_every=0", "train.sample_n=4"]
    return load_config(preset, sets)


class StopAt(Reporter):
    """Presses Ctrl-C (a real SIGINT to this process) when step ``n`` is logged."""

    def __init__(self, n: int):
        self.n = n

    def step(self, row):
        if row["step"] == self.n:
            os.kill(os.getpid(), signal.SIGINT)


def final_tensors(run: Path) -> dict[str, torch.Tensor]:
    return checkpoints.load(checkpoints.resolve(run)).tensors


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ after resume: {different[:5]}"


def straight_and_resumed(cfg, tmp_path: Path, cli, stop_at: int) -> tuple[Path, Path]:
    """Train ``cfg`` straight through, and again stopped by a real Ctrl-C at step ``stop_at``
    then continued with ``gancli train --resume``: (straight run, stopped-and-resumed run)."""
    from gancli.errors import Interrupted

    straight = create_run_dir(tmp_path, "straight")
    write_config(straight, cfg)
    train(cfg, straight, torch.device("cpu"), Reporter())
    stopped = create_run_dir(tmp_path, "stopped")
    write_config(stopped, cfg)
    with pytest.raises(Interrupted):
        train(cfg, stopped, torch.device("cpu"), StopAt(stop_at))
    assert checkpoints.load(checkpoints.resolve(stopped)).step == stop_at
    r = cli("train", "--resume", str(stopped), "--quiet")
    assert r.code == 0, r.err
    return straight, stopped


@pytest.mark.parametrize("preset", sorted(CASES))
def test_interrupted_and_resumed_equals_straight(preset, tmp_path, cli):
    straight, stopped = straight_and_resumed(tiny_cfg(preset, 20, CASES[preset]), tmp_path, cli, 9)
    assert_identical(final_tensors(straight), final_tensors(stopped))
    # the metrics log has each step once, even though steps 1..9 were logged before the stop
    rows = [json.loads(line) for line in (stopped / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "g_loss" in r]
    assert steps == list(range(1, 21))


def test_sigkill_at_a_random_moment_then_resume(tmp_path):
    """SIGKILL (no chance to clean up) mid-run; the newest complete checkpoint resumes exactly."""
    args = [sys.executable, "-m", "gancli", "train", "wgan-gp-toy", "--quiet",
            *tiny_overrides("wgan-gp-toy"), "--steps", "800", "--batch-size", "8",
            "--ckpt-every", "5", "--sample-every", "0", "--log-every", "50", "--set", "train.keep=2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = subprocess.run(args + ["--out", str(tmp_path / "ref")], env=env, capture_output=True)
    assert ref.returncode == 0, ref.stderr.decode()

    proc = subprocess.Popen(args + ["--out", str(tmp_path / "killed")], env=env,
                            stderr=subprocess.PIPE)
    latest = tmp_path / "killed" / "wgan-gp-toy-001" / "checkpoints" / "latest"
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.05)  # land somewhere in the middle of later steps / checkpoint writes
    proc.kill()
    proc.wait()
    run = latest.parent.parent
    killed_at = checkpoints.load(checkpoints.resolve(run)).step
    assert 0 < killed_at < 800, "the kill should land mid-run"
    resumed = subprocess.run([sys.executable, "-m", "gancli", "train", "--resume", str(run),
                              "--quiet"], env=env, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert_identical(final_tensors(tmp_path / "ref" / "wgan-gp-toy-001"), final_tensors(run))
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert not leftovers, "temporary files of the killed write should be cleaned on resume"


def test_resume_refuses_changes_that_reshape_the_run(tmp_path, cli):
    cfg = tiny_cfg("dcgan", 2, [])
    run = create_run_dir(tmp_path, "r")
    write_config(run, cfg)
    train(cfg, run, torch.device("cpu"), Reporter())
    r = cli("train", "--resume", str(run), "--set", "model.g_width=16")
    assert r.code == 2 and "keeps its config" in r.err and "model.g_width" in r.err
    r = cli("train", "--resume", str(run), "--steps", "4", "--quiet")
    assert r.code == 0, r.err
    assert checkpoints.load(checkpoints.resolve(run)).step == 4


def test_resume_recreates_a_removed_samples_folder(tmp_path, cli):
    """A run copied or trimmed to its checkpoints still gets its grids when resumed."""
    cfg = tiny_cfg("dcgan", 2, [])
    run = create_run_dir(tmp_path, "r")
    write_config(run, cfg)
    train(cfg, run, torch.device("cpu"), Reporter())
    shutil.rmtree(run / "samples")
    r = cli("train", "--resume", str(run), "--steps", "4", "--quiet")
    assert r.code == 0, r.err
    assert "cannot write" not in r.err
    assert (run / "samples" / "step-0000004.png").is_file()


def test_ctrl_c_saves_and_exits_130_then_a_killed_write_is_ignored(tmp_path):
    args = [sys.executable, "-m", "gancli", "train", "gan", *tiny_overrides("gan"), "--steps",
            "100000", "--batch-size", "8", "--ckpt-every", "50", "--sample-every", "0",
            "--log-every", "10", "--out", str(tmp_path)]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    latest = tmp_path / "gan-001" / "checkpoints" / "latest"
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "--resume" in err and "Traceback" not in err
    run = tmp_path / "gan-001"
    ckpt_dir = run / "checkpoints"
    stopped_at = checkpoints.load(checkpoints.resolve(run)).step
    assert stopped_at >= 50  # at least the first periodic checkpoint, plus the one Ctrl-C wrote

    # a later save that died half way: a temporary file, and a newer checkpoint cut short
    good = checkpoints.resolve(run)
    data = good.read_bytes()
    (ckpt_dir / f".step-9999990.safetensors.{os.getpid()}.tmp").write_bytes(data[:1000])
    checkpoints.step_path(ckpt_dir, stopped_at + 5).write_bytes(data[: len(data) // 3])
    (ckpt_dir / "latest").write_text(checkpoints.step_path(ckpt_dir, stopped_at + 5).name)
    assert checkpoints.resolve(run) == good  # the newest *readable* checkpoint
    done = subprocess.run([sys.executable, "-m", "gancli", "train", "--resume", str(run),
                           "--steps", str(stopped_at + 3), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert checkpoints.load(checkpoints.resolve(run)).step == stopped_at + 3
    assert not list(ckpt_dir.glob(".*.tmp"))


def _format_1(config: dict) -> dict:
    """``config`` (a to_dict) as format-1 checkpoints and run folders stored it: every moved
    key back in its old shared section, the owners' sections absent."""
    from gancli.config import MOVED_KEYS

    old = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for was, now in MOVED_KEYS.items():
        section, key = now.split(".")
        old[was.split(".")[0]][was.split(".")[1]] = old[section].pop(key)
    return {k: v for k, v in old.items() if v != {}}



def _tiny_sets(preset: str, steps: int, extra: list[str]) -> list[str]:
    """``tiny_cfg``'s overrides as ``--set`` arguments."""
    sets = [s for s in tiny_overrides(preset) if s != "--set"] + extra + [
        f"train.steps={steps}", "train.batch_size=8", "train.log_every=1", "train.sample_every=0",
        "train.ckpt_every=0", "train.sample_n=4"]
    return [x for s in sets for x in ("--set", s)]


def test_a_run_stored_before_keys_moved_resumes_and_samples(tmp_path, cli):
    """Run folders and checkpoints written with the old key names (loss.info_weight, format 1):
    `runs` and `sample` read them; `--resume` and `--resume auto` take the stored non-default
    value at its new place and end bit-identical to a run that never stopped."""
    import yaml

    extra = ["infogan.info_weight=0.5", "train.seed=2"]
    straight = create_run_dir(tmp_path, "straight")
    write_config(straight, tiny_cfg("infogan", 4, extra))
    train(tiny_cfg("infogan", 4, extra), straight, torch.device("cpu"), Reporter())

    old_runs = []
    for _ in range(2):
        run = create_run_dir(tmp_path, "old")
        write_config(run, tiny_cfg("infogan", 2, extra))
        train(tiny_cfg("infogan", 2, extra), run, torch.device("cpu"), Reporter())
        path = checkpoints.resolve(run)
        ckpt = checkpoints.load(path)
        stored = _format_1(ckpt.meta["config"])
        assert stored["loss"]["info_weight"] == 0.5 and "infogan" not in stored
        checkpoints.save(path, ckpt.tensors, {**ckpt.meta, "gancli_format": 1, "config": stored})
        (run / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
        old_runs.append(run)

    r = cli("runs", str(tmp_path), "--json")
    assert r.code == 0 and "old-001" in r.out, r.err
    r = cli("sample", str(old_runs[0]), "--seeds", "0-3", "--out", str(tmp_path / "s.png"))
    assert r.code == 0 and (tmp_path / "s.png").is_file(), r.err
    r = cli("train", "--resume", str(old_runs[0]), "--steps", "4", "--quiet")
    assert r.code == 0, r.err
    r = cli("train", "infogan", "--name", old_runs[1].name, "--out", str(tmp_path), "--resume",
            "auto", "--quiet", *_tiny_sets("infogan", 4, extra))
    assert r.code == 0, r.err
    for run in old_runs:
        assert_identical(final_tensors(straight), final_tensors(run))
        meta = checkpoints.load(checkpoints.resolve(run), tensors=False).meta
        assert meta["step"] == 4 and meta["gancli_format"] == checkpoints.FORMAT
        assert meta["config"]["infogan"] == {"info_weight": 0.5}
        assert "info_weight" not in meta["config"]["loss"]
