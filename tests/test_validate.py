"""Files gancli reads are checked before use (gancli/validate.py and the readers): optimiser
state for every optimiser, a failed resume leaves no run folder, a damaged metrics log or
dataset cache does not block a run."""

from __future__ import annotations

import json

import pytest
import torch

from gancli import checkpoints
from gancli.errors import CheckpointError
from gancli.reporting import Reporter
from gancli.runlog import read_metrics
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train

from conftest import TINY, tiny_overrides
from test_resume import tiny_cfg


def _tiny_run(tmp_path, preset: str, extra: list[str], steps: int = 2):
    cfg = tiny_cfg(preset, steps, extra)
    run = create_run_dir(tmp_path, preset)
    write_config(run, cfg)
    train(cfg, run, torch.device("cpu"), Reporter())
    return run


def _copy_with(ckpt: checkpoints.Checkpoint, dest, tensors=None, meta=None):
    checkpoints.save(dest, tensors if tensors is not None else ckpt.tensors,
                     meta if meta is not None else ckpt.meta)
    return dest


@pytest.mark.parametrize("optim", ["rmsprop", "sgd", "adam"])
def test_each_optimiser_resumes_and_refuses_a_moment_of_the_wrong_shape(optim, tmp_path, cli):
    run = _tiny_run(tmp_path, "gan", [f"optim.name={optim}", "optim.beta1=0.5"])
    ckpt = checkpoints.load(checkpoints.resolve(run))
    moments = sorted(k for k in ckpt.tensors if k.startswith("opt_D.") and ckpt.tensors[k].dim())
    assert moments, "every optimiser here keeps a per-parameter moment"
    r = cli("train", "--resume", str(run), "--steps", "3", "--quiet")
    assert r.code == 0, r.err
    bad = dict(ckpt.tensors)
    bad[moments[0]] = torch.cat([bad[moments[0]].reshape(-1)] * 2)
    f = _copy_with(ckpt, tmp_path / "bad.safetensors", tensors=bad)
    r = cli("train", "--resume", str(f), "--steps", "3", "--out", str(tmp_path / "out"))
    assert r.code == 1 and f"tensor {moments[0]} is" in r.err and "its parameter is" in r.err, r.err
    assert "internal error" not in r.err


def test_a_negative_second_moment_is_refused(tmp_path, cli):
    """sqrt(exp_avg_sq) of a negative value is NaN in the very next step."""
    run = _tiny_run(tmp_path, "gan", [])
    ckpt = checkpoints.load(checkpoints.resolve(run))
    bad = dict(ckpt.tensors)
    bad["opt_G.0.exp_avg_sq"] = -bad["opt_G.0.exp_avg_sq"] - 1
    f = _copy_with(ckpt, tmp_path / "neg.safetensors", tensors=bad)
    r = cli("train", "--resume", str(f), "--steps", "3", "--out", str(tmp_path / "out"))
    assert r.code == 1 and "opt_G.0.exp_avg_sq holds negative values" in r.err, r.err


def test_a_failed_resume_of_a_loose_checkpoint_leaves_no_run_folder(tmp_path, cli):
    run = _tiny_run(tmp_path, "gan", [])
    ckpt = checkpoints.load(checkpoints.resolve(run))
    bad = {k: v for k, v in ckpt.tensors.items() if k != "opt_G.0.exp_avg"}
    f = _copy_with(ckpt, tmp_path / "step-0000002.safetensors", tensors=bad)
    out = tmp_path / "out"
    r = cli("train", "--resume", str(f), "--steps", "3", "--out", str(out))
    assert r.code == 1 and "opt_G.0.exp_avg is missing" in r.err, r.err
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def test_a_failed_resume_of_a_run_keeps_it_untouched(tmp_path, cli):
    """Refused before anything is written: the run's checkpoints and log are as they were."""
    run = _tiny_run(tmp_path, "gan", [])
    ckpt_path = checkpoints.resolve(run)
    ckpt = checkpoints.load(ckpt_path)
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    meta = {**ckpt.meta, "data_pos": -5}
    _copy_with(ckpt, ckpt_path, meta=meta)
    before[f"{ckpt_path.name}"] = ckpt_path.read_bytes()
    r = cli("train", "--resume", str(run), "--steps", "3")
    assert r.code == 1 and "metadata 'data_pos' must be an integer >= 0, found -5" in r.err, r.err
    after = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before


def test_damaged_metrics_lines_do_not_block_a_resume(tmp_path, cli):
    """A bare number, non-UTF-8 bytes and a non-numeric step in metrics.jsonl: the run
    resumes through the CLI, the damaged lines are dropped, every step is logged once."""
    out = tmp_path / "runs"
    r = cli("train", "gan", *tiny_overrides("gan"), *TINY, "--out", str(out), "--quiet")
    assert r.code == 0, r.err
    run = out / "gan-001"
    log = run / "metrics.jsonl"
    with log.open("ab") as f:
        f.write(b"42\n\xff\xfe\x00garbage\n" + json.dumps({"step": "abc", "g_loss": 1}).encode()
                + b"\n")
    assert read_metrics(log)[1] == 3
    r = cli("train", "--resume", str(run), "--steps", "6", "--quiet")
    assert r.code == 0, r.err
    rows, skipped = read_metrics(log)
    assert skipped == 0
    assert [row["step"] for row in rows if "g_loss" in row] == [2, 4, 6]


def test_resume_pins_the_runs_channels(tmp_path, cli):
    """A grey folder run that gained a colour image resumes grey: the run's stored data spec
    decides "what the data has", and its later checkpoints keep (1, 8, 8)."""
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(4):
        Image.new("L", (12, 12), 40 * i).save(d / f"g{i}.png")
    args = ["--set", "data.resolution=8", "--set", "model.g_width=8", "--set", "model.d_width=8",
            "--set", "train.sample_n=4", "--steps", "1", "--batch-size", "4", "--sample-every", "0"]
    r = cli("train", "dcgan", "--data", str(d), *args, "--out", str(tmp_path / "runs"), "--quiet")
    assert r.code == 0, r.err
    Image.new("RGB", (12, 12), (250, 0, 0)).save(d / "colour.png")
    run = tmp_path / "runs" / "dcgan-001"
    r = cli("train", "--resume", str(run), "--steps", "2", "--quiet")
    assert r.code == 0, r.err
    final = checkpoints.load(checkpoints.resolve(run))
    assert final.step == 2 and final.meta["data"]["shape"] == [1, 8, 8]


def test_checkpoint_format_must_be_a_version_number(tmp_path):
    run = _tiny_run(tmp_path, "gan", [])
    ckpt = checkpoints.load(checkpoints.resolve(run))
    f = _copy_with(ckpt, tmp_path / "fmt.safetensors", meta={**ckpt.meta, "gancli_format": [1]})
    with pytest.raises(CheckpointError, match="is not a version number"):
        checkpoints.load(f)


def test_a_damaged_dataset_cache_is_a_miss(tmp_path):
    """A cache file with the right key but wrong contents (info not a mapping, labels out of
    range, another resolution) is decoded again, never an error."""
    from PIL import Image
    from safetensors.torch import save_file

    from gancli.data import images

    d = tmp_path / "imgs"
    for c in ("a", "b"):
        (d / c).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (10, 10), (100 * i, 50, 0)).save(d / c / f"{i}.png")
    cache = tmp_path / "cache"
    first = images.load_image_folder(d, 8, None, cache, labels=True)
    assert first.info["cache"] == "miss"
    (file,) = list(cache.glob("*.safetensors"))
    from safetensors import safe_open

    with safe_open(str(file), "pt") as f:
        meta, x, y = f.metadata(), f.get_tensor("x"), f.get_tensor("y")
    damaged = [({**meta, "info": "[1]"}, x, y),
               (meta, x, torch.full_like(y, 7)),
               (meta, x[:, :, :4, :4].contiguous(), y)]
    for m, xx, yy in damaged:
        save_file({"x": xx, "y": yy}, str(file), metadata=m)
        again = images.load_image_folder(d, 8, None, cache, labels=True)
        assert again.info["cache"] == "miss"
        assert torch.equal(again.x, first.x) and torch.equal(again.y, first.y)
    assert images.load_image_folder(d, 8, None, cache, labels=True).info["cache"] == "hit"


def test_a_damaged_statistics_cache_is_a_miss(tmp_path):
    import numpy as np

    from gancli.metrics.evaluate import CACHE_FORMAT, read_stats, write_stats

    f = tmp_path / "s.npz"
    feats = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    write_stats(f, feats, {"format": CACHE_FORMAT, "count": 20})
    assert read_stats(f) is not None
    for bad in ({"meta": np.array("[1]")}, {"mu": np.full(4, np.nan)},
                {"features": feats[:, :3]}, {"sigma": np.array(["x"] * 16).reshape(4, 4)}):
        with np.load(f) as z:
            arrays = {k: z[k] for k in z.files}
        np.savez(tmp_path / "bad.npz", **{**arrays, **bad})
        assert read_stats(tmp_path / "bad.npz") is None, bad


def _yaml_values():
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
    keys = st.one_of(st.sampled_from(["train", "model", "data", "optim", "steps", "g_width",
                                      "source", "channels", "extends", "name", "run", "loss"]),
                     st.text(max_size=6), st.integers(), st.none(), st.booleans())
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


def test_any_yaml_config_or_preset_file_is_a_config_error_or_valid(tmp_path_factory):
    """--config files and user presets: any YAML structure (or raw bytes) is a ConfigError
    with one line (exit 2) or a valid layer; never another exception."""
    import yaml
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from gancli.config import load_config_file
    from gancli.errors import ConfigError
    from gancli.presets import load_preset

    @settings(max_examples=60, deadline=None)
    @given(st.one_of(_yaml_values().map(lambda v: yaml.safe_dump(v).encode()),
                     st.binary(max_size=40)))
    def check(content):
        f = tmp_path_factory.mktemp("yaml") / "c.yaml"
        f.write_bytes(content)
        for load in (load_config_file, load_preset):
            try:
                load(str(f))
            except ConfigError as e:
                assert e.message and "\n" not in e.message and e.exit_code == 2

    check()


@pytest.mark.parametrize("step", ['"ten"', "[3]", "-1", "2.5"])
def test_sample_refuses_a_step_that_is_not_a_count(step, tmp_path, cli):
    run = _tiny_run(tmp_path, "gan", [])
    ckpt = checkpoints.load(checkpoints.resolve(run))
    f = _copy_with(ckpt, tmp_path / "s.safetensors", meta={**ckpt.meta, "step": json.loads(step)})
    r = cli("sample", str(f), "--n", "4", "--out", str(tmp_path / "x.png"))
    assert r.code == 1 and "metadata 'step' must be an integer >= 0" in r.err, r.err
