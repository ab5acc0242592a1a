"""``train --tensorboard``: events that TensorBoard's own reader loads, with the logged values."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gancli.runlog import read_metrics

from conftest import TINY, no_traceback, tiny_overrides


def events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_scalars_and_grids_match_metrics_jsonl(cli, tmp_path):
    pytest.importorskip("tensorboard")
    r = cli("train", "dcgan", *TINY, *tiny_overrides("dcgan"), "--set", "train.sample_every=2",
            "--tensorboard", "--out", str(tmp_path))
    assert r.code == 0, r.err
    (run,) = tmp_path.iterdir()
    assert list(run.glob("events.out.tfevents.*"))
    acc = events(run)
    tags = acc.Tags()
    assert {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "lr/lr_g", "lr/lr_d",
            "speed/img_s"} <= set(tags["scalars"])
    assert tags["images"] == ["samples"]
    rows = [r for r in read_metrics(run / "metrics.jsonl")[0] if "d_loss" in r]
    logged = [(e.step, e.value) for e in acc.Scalars("train/d_loss")]
    assert [s for s, _ in logged] == [r["step"] for r in rows] == [2, 4]
    assert [v for _, v in logged] == pytest.approx([r["d_loss"] for r in rows], rel=1e-6)
    grids = acc.Images("samples")
    assert [g.step for g in grids] == [2, 4]
    from PIL import Image
    png = Image.open(run / "samples" / "step-0000004.png")
    assert (grids[-1].width, grids[-1].height) == png.size


def test_resume_purges_events_after_the_checkpoint(cli, tmp_path):
    pytest.importorskip("tensorboard")
    args = [*TINY, *tiny_overrides("dcgan"), "--set", "train.ckpt_every=2", "--out", str(tmp_path)]
    assert cli("train", "dcgan", *args, "--tensorboard").code == 0
    (run,) = tmp_path.iterdir()
    # resume from the step-2 checkpoint: steps 3-4 are trained again; the first attempt's
    # events at step 4 must not show next to the new ones (--tensorboard is resumable)
    r = cli("train", "--resume", str(run / "checkpoints" / "step-0000002.safetensors"),
            "--tensorboard")
    assert r.code == 0, r.err
    rows = [r for r in read_metrics(run / "metrics.jsonl")[0] if "g_loss" in r]
    logged = events(run).Scalars("train/g_loss")
    assert [e.step for e in logged] == [r["step"] for r in rows] == [2, 4]
    assert [e.value for e in logged] == pytest.approx([r["g_loss"] for r in rows], rel=1e-6)


def test_missing_tensorboard_is_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    r = cli("train", "dcgan", *TINY, *tiny_overrides("dcgan"), "--tensorboard",
            "--out", str(tmp_path))
    assert r.code == 1
    assert "--tensorboard needs the Python package 'tensorboard'" in r.err
    assert 'pip install "gancli[tensorboard]"' in r.err
    assert no_traceback(r.err) and len(r.err.strip().splitlines()) == 2
    assert not any(tmp_path.iterdir())  # refused before a run folder was made
