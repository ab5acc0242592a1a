"""Data-parallel training under torchrun, on CPU with the gloo backend and 2 processes.

One straight 2-process run (in-process ``train``, each rank saving its final weights), then
the same run through the CLI stopped at a checkpoint and resumed with ``--resume``, also
under torchrun. The ranks must end with identical weights, and the resumed run must end
bit-identical to the straight one (each rank's noise generator and image pool included).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gancli import checkpoints

HERE = Path(__file__).resolve().parent
# BN statistics (buffers follow rank 0), an image pool and noise per rank, flips, EMA
# (the paper's plain objective: the dcgan preset's clusters refuse an image pool)
SETS = ["objective=unconditional", "model.z_clusters=0",
        "data.size=512", "data.resolution=8", "model.g_width=8", "model.d_width=8",
        "train.batch_size=8", "train.pool_size=4", "train.ema=0.9", "data.flip=true",
        "train.sample_every=0", "train.log_every=2", "train.ckpt_every=3", "train.sample_n=4"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={free_port()}", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def test_two_processes_identical_weights_and_exact_resume(tmp_path):
    pytest.importorskip("torch.distributed")
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("no gloo backend in this PyTorch build")
    # 1. straight: 6 steps, each rank keeps its own final weights
    straight = tmp_path / "straight"
    torchrun(str(HERE / "dist_worker.py"), str(tmp_path), str(straight), "dcgan",
             "train.steps=6", *SETS)
    r0, r1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert r0.keys() == r1.keys()
    assert all(torch.equal(r0[k], r1[k]) for k in r0), "ranks ended with different weights"
    final = checkpoints.load(checkpoints.resolve(straight))
    assert final.step == 6 and final.meta["world_size"] == 2
    assert any(k.startswith("rank1.") for k in final.tensors)  # rank 1's noise and pool
    assert all(torch.equal(final.tensors[k], r0[k]) for k in r0)
    # the ranks drew different data and noise: weights moved (rank 0 == rank 1 is not trivial)
    assert not torch.equal(final.tensors["rng.noise"], final.tensors["rank1.rng.noise"])

    # 2. the CLI under torchrun: 3 steps, then --resume to 6; only rank 0 wrote anything
    flags = [x for s in SETS for x in ("--set", s)]
    out = tmp_path / "cli"
    torchrun("-m", "gancli", "train", "dcgan", "--steps", "3", "--device", "cpu", "--quiet",
             "--out", str(out), *flags)
    assert [p.name for p in out.iterdir()] == ["dcgan-001"]
    run = out / "dcgan-001"
    torchrun("-m", "gancli", "train", "--resume", str(run), "--steps", "6", "--quiet")
    resumed = checkpoints.load(checkpoints.resolve(run))
    assert resumed.step == 6
    assert resumed.tensors.keys() == final.tensors.keys()
    different = [k for k in final.tensors if not torch.equal(final.tensors[k], resumed.tensors[k])]
    assert not different, f"resumed 2-process run differs: {different[:5]}"


def rank_pid(agent: subprocess.Popen, rank: int, limit: float = 120) -> int | None:
    """The PID of torchrun's worker with RANK=rank (None if it never appeared)."""
    import time

    deadline = time.time() + limit
    while time.time() < deadline and agent.poll() is None:
        for child in Path(f"/proc/{agent.pid}/task/{agent.pid}/children").read_text().split():
            try:
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in environ:
                return int(child)
        time.sleep(0.05)
    return None


@pytest.mark.slow  # three 2-process jobs, a few minutes on 2 cores
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's workers in /proc")
def test_sigterm_to_one_rank_stops_both_at_one_step_and_resume_auto_is_exact(tmp_path):
    """SIGTERM reaches rank 1 only (as a scheduler's signal may reach one task first): both ranks
    agree on the stop step at the next log step, save one checkpoint and exit 143; the identical
    command with --resume auto then ends bit-identical to an uninterrupted job."""
    import re
    import signal
    import time

    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("no gloo backend in this PyTorch build")
    flags = [x for s in SETS for x in ("--set", s)]

    def job(out: Path) -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                f"--master_port={free_port()}", "-m", "gancli", "train", "dcgan", "--steps", "40",
                "--device", "cpu", "--quiet", "--out", str(out), "--name", "job", "--resume",
                "auto", *flags]

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    ref = subprocess.run(job(tmp_path / "ref"), capture_output=True, text=True, env=env, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    out = tmp_path / "jobs"
    run = out / "job"
    agent = subprocess.Popen(job(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    worker = rank_pid(agent, 1)
    assert worker is not None
    deadline = time.time() + 300
    while not (run / "checkpoints" / "latest").exists() and time.time() < deadline \
            and agent.poll() is None:
        time.sleep(0.01)
    os.kill(worker, signal.SIGTERM)
    _, err = agent.communicate(timeout=300)
    assert "interrupted at step" in err and "by SIGTERM; checkpoint saved" in err, err[-3000:]
    stopped = checkpoints.load(checkpoints.resolve(run))
    assert 3 <= stopped.step < 40 and stopped.meta["world_size"] == 2
    # both ranks named the same step
    said = set(re.findall(r"interrupted at step (\d+) by SIGTERM", err))
    assert said == {str(stopped.step)}, err[-3000:]
    again = subprocess.run(job(out), capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == ["job"]
    a, b = checkpoints.load(checkpoints.resolve(tmp_path / "ref" / "job")), \
        checkpoints.load(checkpoints.resolve(run))
    assert b.step == 40 and a.tensors.keys() == b.tensors.keys()
    different = [k for k in a.tensors if not torch.equal(a.tensors[k], b.tensors[k])]
    assert not different, f"resumed 2-process job differs: {different[:5]}"
